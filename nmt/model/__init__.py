"""nmt.model."""

"""nmt.modules."""

"""nmt.data."""

"""nmt.train."""

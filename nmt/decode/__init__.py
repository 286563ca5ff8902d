"""nmt.decode."""

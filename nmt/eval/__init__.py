"""nmt.eval."""

"""nmt.ablate."""

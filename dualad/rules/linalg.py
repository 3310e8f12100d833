"""Linear algebra (to be filled)."""

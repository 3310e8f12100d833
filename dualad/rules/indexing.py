"""Indexing primitives (to be filled)."""

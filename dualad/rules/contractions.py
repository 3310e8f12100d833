"""Contractions (to be filled)."""

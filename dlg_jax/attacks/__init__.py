"""Gradient-inversion attacks. See `registry` for the list."""

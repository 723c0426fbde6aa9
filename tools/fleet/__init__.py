"""Starform fleet toolchain: load → merge → model → render → check."""

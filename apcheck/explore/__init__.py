"""Explicit-state exploration of every interleaving."""

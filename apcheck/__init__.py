"""apcheck: a model checker for the locking and configuration invariants of drivers."""

__version__ = "0.2.0"

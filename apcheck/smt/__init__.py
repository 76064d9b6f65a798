"""Z3 back end: proofs rather than search."""

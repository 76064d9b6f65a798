"""The front end: parse, load imports, resolve and type-check, print."""

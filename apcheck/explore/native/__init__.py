"""The native explorer core: the lowered program at sizes, with one scenario's threads, as generated C
(codegen), built with the system compiler and cached (build), searched by core.c and read back as
the Python explorer's ExploreResult (search). ARCHITECTURE.md, "The native core"."""

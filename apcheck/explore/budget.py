"""Time and memory limits of a search, checked between states and inside long expansions.

A search that reaches a limit stops and says why (the verdicts are then
`unknown`); it never runs on past its timeout by more than a fraction of a
second, and never past its memory budget by more than what one expansion
allocates between two checks.
"""
from __future__ import annotations

import os
import resource
import time

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class LimitReached(Exception):
    """Raised inside an expansion (Semantics) when a limit is reached; the search catches it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def resident_mb() -> float:
    """This process's resident memory now (its peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE / 2 ** 20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def available_mb() -> float | None:
    """The memory the machine has available now (MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return None


class Budget:
    def __init__(self, timeout: float | None, max_memory_mb: float | None):
        self.start = time.monotonic()
        self.timeout = timeout
        self.max_memory_mb = max_memory_mb
        self.calls = 0

    def exceeded(self) -> str | None:
        """The limit reached, if any: the time on every call, the memory on every eighth."""
        self.calls += 1
        if self.timeout is not None and time.monotonic() - self.start > self.timeout:
            return f"timeout {self.timeout:g}s"
        if self.max_memory_mb is not None and self.calls % 8 == 0:
            used = resident_mb()
            if used > self.max_memory_mb:
                return f"memory limit of {self.max_memory_mb:,.0f} MiB reached"
        return None

    def check(self) -> None:
        """For the middle of an expansion: raise LimitReached when a limit is reached."""
        reason = self.exceeded()
        if reason is not None:
            raise LimitReached(reason)

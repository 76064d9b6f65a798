"""Reading a lockdep "possible circular locking dependency" report, and matching it to a model.

`parse_splat` takes the text as dmesg prints it (timestamps and addresses
allowed) and returns the dependency chain: for each `-> #N (lock)` entry, the
lock held (the next entry's lock) and the lock acquired with the call stack
that acquired it, lockdep's own frames left out. `explain` checks each of
those edges against a model's lock-order graph: reached by the explorer, on
a static path only, or absent, and compares the call chains.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from apcheck.diagnostics import UsageError
from apcheck.results import LockEdge

# lockdep's and the locking primitives' own frames, not the caller's code
_INTERNAL = re.compile(r"^(validate_chain|__lock_acquire|lock_acquire(\.part\.\d+)?|__mutex_lock\w*|mutex_lock\w*|"
                       r"down_(read|write)\w*|_raw_spin_lock\w*|_raw_\w+|check_\w+|__lock_\w+|lock_\w+_nested)$")
_ENTRY = re.compile(r"->\s*#(\d+)\s*\(([^)]+)\)")
_FRAME = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?(?:\[<[0-9a-f]+>\]\s*)?([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")


@dataclass
class SplatEdge:
    held: str
    acquired: str
    frames: list[str]          # the acquiring stack, innermost first, lockdep's frames left out
    entry: int                 # lockdep's #N


@dataclass
class Splat:
    edges: list[SplatEdge]
    chain: list[str]           # the cycle as lockdep prints it in "Chain exists of"


@dataclass
class EdgeMatch:
    splat: SplatEdge
    status: str                # reached | static | absent | unknown-lock
    model: LockEdge | None = None
    common: list[str] = field(default_factory=list)   # functions on both call chains


@dataclass
class Explanation:
    matches: list[EdgeMatch]

    @property
    def explained(self) -> bool:
        return bool(self.matches) and all(m.status == "reached" for m in self.matches)


def lock_name(lockdep_name: str) -> str:
    """Lockdep's class name as the models name it: `&matrix_dev->lock` is `matrix_dev->lock`."""
    name = lockdep_name.strip()
    name = re.sub(r"[{].*$", "", name)
    return name.lstrip("&").strip()


def parse_splat(text: str, path: str = "<splat>") -> Splat:
    lines = [re.sub(r"^\s*(?:>\s*)?\[\s*[+\d.]+\]\s?", "", ln) for ln in text.splitlines()]
    entries: list[tuple[int, str, list[str]]] = []
    chain: list[str] = []
    current: list[str] | None = None
    for i, line in enumerate(lines):
        m = _ENTRY.search(line)
        if m:
            current = []
            entries.append((int(m.group(1)), lock_name(m.group(2)), current))
            continue
        if "Chain exists of" in line:
            current = None
            after = next((ln for ln in lines[i + 1:] if ln.strip()), "")
            chain = [lock_name(x) for x in after.split("-->") if x.strip()]
            continue
        if current is not None:
            f = _FRAME.match(line)
            if f:
                if not _INTERNAL.match(f.group(1)):
                    current.append(f.group(1))
            elif line.strip() and not line.strip().startswith("->"):
                current = None
    if not entries:
        raise UsageError(f"{path}: no lockdep dependency chain found (expected lines like '-> #0 (&lock){{...}}:')")
    entries.sort(key=lambda e: e[0])
    n = len(entries)
    edges = []
    for k, (num, lock, frames) in enumerate(entries):
        held = entries[(k - 1) % n][1]  # #N was taken while holding #N-1's lock (#0 while holding the last)
        edges.append(SplatEdge(held, lock, frames, num))
    return Splat(edges, chain)


def explain(splat: Splat, edges: list[LockEdge], classes: list[str]) -> Explanation:
    by_pair = {(e.src, e.dst): e for e in edges}
    matches = []
    for se in splat.edges:
        if se.held not in classes or se.acquired not in classes:
            matches.append(EdgeMatch(se, "unknown-lock"))
            continue
        e = by_pair.get((se.held, se.acquired))
        if e is None:
            matches.append(EdgeMatch(se, "absent"))
            continue
        chain = [f.function for f in e.dst_site.chain]
        common = [f for f in chain if f in se.frames]
        matches.append(EdgeMatch(se, "reached" if e.reached else "static", e, common))
    return Explanation(matches)

"""Reading a lockdep "possible circular locking dependency" report.

`parse_splat` takes the text as dmesg prints it (timestamps and addresses
allowed) and returns the dependency chain: for each `-> #N (lock)` entry, the
lock held (the next entry's lock) and the lock acquired with the call stack
that acquired it, lockdep's own frames left out. `apcheck explain`
(commands/explain.py) matches it against a model.
"""
from __future__ import annotations

import re
from apcheck.diagnostics import UsageError
from apcheck.results import Splat, SplatEdge

# lockdep's and the locking primitives' own frames, not the caller's code
_INTERNAL = re.compile(r"^(validate_chain|__lock_acquire|lock_acquire(\.part\.\d+)?|__mutex_lock\w*|mutex_lock\w*|"
                       r"down_(read|write)\w*|_raw_spin_lock\w*|_raw_\w+|check_\w+|__lock_\w+|lock_\w+_nested)$")
_ENTRY = re.compile(r"->\s*#(\d+)\s*\(([^)]+)\)")
_FRAME = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?(?:\[<[0-9a-f]+>\]\s*)?([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")


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
        edges.append(SplatEdge(held=held, acquired=lock, frames=frames, entry=num))
    return Splat(edges=edges, chain=chain)


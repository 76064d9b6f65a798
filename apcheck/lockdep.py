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
# `-> #1 (&kvm->lock){+.+.}-{3:3}:`; the name may hold parentheses (`&(&x->lock)->rlock`)
_ENTRY = re.compile(r"->\s*#(\d+)\s*\((.+?)\)(?=\{|:|\s*$)")
_FRAME = re.compile(r"^\s*(?:\[<[0-9a-f]+>\]\s*)?([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")
# what precedes the kernel's text on a line: e-mail quoting, syslog's "... kernel: ", dmesg's [timestamp]
_PREFIXES = [re.compile(r"^\s*(?:>\s?)+"), re.compile(r"^.*?\bkernel:\s"), re.compile(r"^\s*\[[^\]]*\]\s?")]
_HELD = re.compile(r"\((.+?)\)(?=\{|,|:|\s*$)")


def lock_name(lockdep_name: str) -> str:
    """Lockdep's class name as the models name it: `&matrix_dev->lock` is `matrix_dev->lock`; the
    raw lock inside a spinlock_t, `&(&kvm->mmu_lock)->rlock`, is `kvm->mmu_lock`; a subclass
    (`&dev->mutex/1`) or a numbered class of the same name (`&ep->mtx#2`) is its class."""
    name = re.sub(r"\{.*$", "", lockdep_name.strip())
    inner = re.fullmatch(r"&?\(&?(.+)\)->rlock", name)
    if inner:
        name = inner.group(1)
    name = re.sub(r"(?:/\d+|#\d+)+$", "", name)
    return name.lstrip("&").strip()


def _strip(line: str) -> str:
    for prefix in _PREFIXES:
        line = prefix.sub("", line, count=1)
    return line


def parse_splat(text: str, path: str = "<splat>") -> Splat:
    """The dependency chain of the report. Entry #N (N >= 1) was acquired while holding entry
    #N-1's lock; #0 while holding the lock the task already held (the header), which is also the
    last entry's. What is missing (a report cut short) or unreadable is listed in `unread`, never
    filled in."""
    lines = [_strip(ln) for ln in text.splitlines()]
    entries: dict[int, tuple[str, list[str]]] = {}
    unread: list[str] = []
    chain: list[str] = []
    header: dict[str, str] = {}   # "acquire": the lock being acquired (#0's), "holding": the one held
    current: list[str] | None = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        m = _ENTRY.search(line)
        if m:
            current = []
            entries.setdefault(int(m.group(1)), (lock_name(m.group(2)), current))
            continue
        if stripped.startswith("->"):  # an entry whose lock cannot be read: its stack is nobody's
            unread.append(f"an entry of the chain could not be read: '{stripped}'")
            current = None
            continue
        for key, words in (("acquire", "is trying to acquire lock"), ("holding", "but task is already holding lock")):
            if words in line:
                name = next((_HELD.search(ln) for ln in lines[i:i + 3] if _HELD.search(ln)), None)
                if name:
                    header[key] = lock_name(name.group(1))
                current = None
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
            elif stripped:
                current = None
    if not entries:
        raise UsageError(f"{path}: no lockdep dependency chain found (expected lines like '-> #0 (&lock){{...}}:')")
    top = max(entries)
    locks = {n: lock for n, (lock, _) in entries.items()}
    if 0 not in locks and "acquire" in header:
        locks[0] = header["acquire"]  # #0 is the lock the task is trying to acquire
    edges = []
    for num in sorted(entries):
        lock, frames = entries[num]
        if num > 0:
            held = locks.get(num - 1)
            why = f"entry #{num - 1}'s, which the report lacks (cut short?)"
        else:
            held = header.get("holding") or (locks[top] if top > 0 and set(entries) == set(range(top + 1)) else None)
            why = "the lock the task already held, which the report does not say"
        if held is None:
            unread.append(f"#{num} {lock}: the lock held when it was acquired is {why}")
            continue
        if not frames:
            unread.append(f"#{num} {lock}: no call stack (the report is cut short?)")
        edges.append(SplatEdge(held=held, acquired=lock, frames=frames, entry=num))
    missing = [n for n in range(top + 1) if n not in entries]
    if missing:
        unread.append("the chain lacks entr" + ("y" if len(missing) == 1 else "ies") + " "
                      + ", ".join(f"#{n}" for n in missing))
    return Splat(edges=edges, chain=chain, unread=unread)

"""The reports of `apcheck extract`: a listing people read, and JSON."""
from __future__ import annotations

import json
from dataclasses import asdict

from apcheck.results import Extraction, LockEvent


def render_extract_text(x: Extraction, all_functions: bool = False) -> str:
    """Per function that takes a lock (every function with `all_functions`): each distinct lock
    sequence with the conditions of the path that has it; what was not understood, with lines."""
    out = []
    for f in x.functions:
        if not (f.takes_locks or f.not_understood or all_functions):
            continue
        n = len(f.paths)
        cut = " (truncated: more paths than apcheck follows)" if f.truncated else ""
        out.append(f"{f.file}:{f.line} {f.name}: {n} lock sequence{'s' if n != 1 else ''}{cut}")
        for i, p in enumerate(f.paths, 1):
            when = ", ".join(dict.fromkeys(_condition(c.text, c.value) for c in p.conditions))
            out.append(f"  path {i}, returning at line {p.end}" + (f", when {when}" if when else "") + ":")
            if not p.events:
                out.append("    (no lock operation)")
            out += ["    " + _event(e) for e in p.events]
        for u in f.not_understood:
            out.append(f"  not understood: {u.file}:{u.line}: {u.why}: {u.text}")
    for u in x.not_understood:
        out.append(f"not understood: {u.file}:{u.line}: {u.why}: {u.text}")
    funcs = len(x.functions)
    locking = sum(1 for f in x.functions if f.takes_locks)
    out.append(f"{funcs} functions in {len(x.files)} file{'s' if len(x.files) != 1 else ''}, {locking} with lock "
               f"operations; {sum(len(f.not_understood) for f in x.functions) + len(x.not_understood)} places "
               "not understood")
    return "\n".join(out) + "\n"


def _condition(text: str, value: bool) -> str:
    if value:
        return text
    if text.startswith("!") and not text.startswith("!=") and "&&" not in text and "||" not in text:
        return text[1:]
    return f"!({text})" if " " in text else f"!{text}"


def _event(e: LockEvent) -> str:
    what = {"acquire": "acquire", "release": "release", "trylock": "trylock", "assert-held": "assert held"}[e.op]
    mode = " read" if e.mode == "read" else ""
    inst = f" [{e.instance}]" if e.instance != e.lock else ""
    via = f"  via {' <- '.join(reversed(e.via))}" if e.via else ""
    fail = "  (may fail: result not tested)" if e.may_fail else ""
    return f"{what}{mode} {e.lock}{inst}  {e.api} at {e.file}:{e.line}{via}{fail}"


def render_extract_json(x: Extraction) -> str:
    doc = asdict(x)
    doc["schema"] = "apcheck-extract/1"
    return json.dumps(doc, indent=2) + "\n"

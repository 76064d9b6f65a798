"""`apcheck ci`: verify every configured model and compare each verdict with its expectation.

Configuration: a `[tool.apcheck]` table in pyproject.toml (or the top level of
apcheck.toml) with `models`, `specs`, optional `bounds`, `claims` and
`interleaved_budget` (per model, the seconds for the induction over the
interleaved steps, as `apcheck verify --interleaved-budget`) and
`interleaved_facts` (per model with a budget, the facts file it starts from, as
`--interleaved-facts`; commands/facts.py). Paths are
relative to the configuration file's folder; the working directory is never
changed. Each model is parsed once: the cache key is a hash of the texts parsed.
"""
from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from typing import Callable

from apcheck import __version__
from apcheck.commands.facts import FactsFile, read_facts
from apcheck.commands.verify import VerifyConfig, verify_at_needed_bounds
from apcheck.diagnostics import Diagnostic, DiagnosticError, Sources, Span, UsageError
from apcheck.files import write_atomically
from apcheck.lang.check import check
from apcheck.lang.loader import load
from apcheck.results import CiOutcome, Mismatch, ModelRun, Verdict, VerifyResult, from_plain, to_plain

CACHE_DIR = ".apcheck-cache"
CACHE_VERSION = 3


@dataclass(frozen=True, kw_only=True)
class CiConfig:
    root: str                         # the folder of the configuration file
    models: list[str]
    specs: list[str]
    bounds: dict[str, int] = field(default_factory=dict)
    claims: list[tuple[str, str]] = field(default_factory=list)
    interleaved_budget: dict[str, float] = field(default_factory=dict)   # model -> seconds
    interleaved_facts: dict[str, str] = field(default_factory=dict)      # model -> facts file

    def path(self, name: str) -> str:
        """A configured path as the reports show it: relative to the working directory."""
        return os.path.relpath(os.path.join(self.root, name))


def find_config(path: str | None) -> CiConfig:
    if path is None:
        here = os.getcwd()
        while True:
            for name in ("apcheck.toml", "pyproject.toml"):
                cand = os.path.join(here, name)
                if os.path.exists(cand) and _has_table(cand):
                    return read_config(cand)
            parent = os.path.dirname(here)
            if parent == here:
                raise UsageError("no apcheck.toml or pyproject.toml with [tool.apcheck] found")
            here = parent
    return read_config(path)


def _has_table(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return path.endswith("apcheck.toml") or "apcheck" in data.get("tool", {})


def read_config(path: str) -> CiConfig:
    """Read and validate the configuration; a wrong value is an error at its line (exit 2)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read '{path}': {getattr(err, 'strerror', None) or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{path}: {err}") from None
    table = data if path.endswith("apcheck.toml") else data.get("tool", {}).get("apcheck")
    if not isinstance(table, dict):
        raise UsageError(f"{path}: no [tool.apcheck] table")
    where = _ConfigText(path, text)
    models = _strings(table, "models", where, required=True)
    specs = _strings(table, "specs", where)
    bounds = table.get("bounds", {})
    if not isinstance(bounds, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                               for v in bounds.values()):
        where.error("bounds", "'bounds' must be a table of sort names to whole numbers of at least 1, "
                    "such as bounds = { Adapter = 2 }")
    claims = table.get("claims", [])
    if not isinstance(claims, list) or not all(isinstance(c, list) and len(c) == 2
                                               and all(isinstance(x, str) for x in c) for c in claims):
        where.error("claims", "'claims' must be a list of [claim text, property name] pairs")
    budget = table.get("interleaved_budget", {})
    if not isinstance(budget, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                                               for v in budget.values()):
        where.error("interleaved_budget", "'interleaved_budget' must be a table of model paths to positive "
                    "seconds, such as interleaved_budget = { \"models/a.apm\" = 600 }")
    unknown = [m for m in budget if m not in models]
    if unknown:
        where.error("interleaved_budget", f"'interleaved_budget' names '{unknown[0]}', which is not in 'models'")
    facts = table.get("interleaved_facts", {})
    if not isinstance(facts, dict) or not all(isinstance(v, str) for v in facts.values()):
        where.error("interleaved_facts", "'interleaved_facts' must be a table of model paths to facts files, "
                    "such as interleaved_facts = { \"models/a.apm\" = \"specs/a.facts\" }")
    unbudgeted = [m for m in facts if m not in budget]
    if unbudgeted:
        where.error("interleaved_facts", f"'interleaved_facts' names '{unbudgeted[0]}', which has no "
                    "'interleaved_budget'")
    root = os.path.dirname(os.path.abspath(path))
    return CiConfig(root=root, models=models, specs=specs, bounds=dict(bounds), claims=[tuple(c) for c in claims],
                    interleaved_budget={m: float(v) for m, v in budget.items()}, interleaved_facts=dict(facts))


class _ConfigText:
    """Positions of keys in the configuration text, for errors."""

    def __init__(self, path: str, text: str):
        self.path, self.text = path, text

    def error(self, key: str, message: str) -> None:
        lines = self.text.splitlines()
        n = next((i + 1 for i, ln in enumerate(lines) if ln.strip().startswith(key)
                  and ln.strip()[len(key):].lstrip().startswith("=")), 1)
        line = lines[n - 1] if lines else ""
        col = line.find(key) + 1 if key in line else 1
        span = Span(self.path, n, col, n, col + len(key))
        raise DiagnosticError([Diagnostic("E004", message, span)],
                              Sources({self.path: self.text}))


def _strings(table: dict, key: str, where: _ConfigText, required: bool = False) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value) or (required and not value):
        where.error(key, f"'{key}' must be a {'non-empty ' if required else ''}list of paths, "
                         f"such as {key} = [\"models/a.apm\"]")
    return list(value)


def run_ci(config_path: str | None, use_cache: bool = True,
           progress: Callable[[str], None] | None = None) -> CiOutcome:
    cfg = find_config(config_path)
    cache, note = _load_cache(cfg.root) if use_cache else ({}, None)
    if note and progress:
        progress(note)
    specs = [cfg.path(s) for s in cfg.specs]
    runs, mismatches = [], []
    for model in cfg.models:
        modules = load([cfg.path(model)] + specs)
        facts = read_facts(cfg.path(cfg.interleaved_facts[model])) if model in cfg.interleaved_facts else None
        key = _input_hash(modules, cfg, model, facts)
        hit = cache.get(model)
        if use_cache and hit and hit["hash"] == key:
            result = from_plain(VerifyResult, hit["result"])
            runs.append(ModelRun(model=model, result=result, verdicts={p.name: str(p.judged_verdict) for p in result.properties},
                                 cached=True))
            mismatches += compare(result)
            if progress:
                progress(f"{model}: unchanged, verdicts reused")
            continue
        if progress:
            progress(f"{model}: verifying")
        program = check(modules, cfg.path(model))
        config = VerifyConfig(bounds=cfg.bounds, interleaved_budget=cfg.interleaved_budget.get(model),
                              interleaved_facts=facts, smt_progress=progress)
        result = verify_at_needed_bounds(program, config, specs)
        found = compare(result)
        runs.append(ModelRun(model=model, result=result, verdicts={p.name: str(p.judged_verdict) for p in result.properties},
                             cached=False))
        mismatches += found
        cache[model] = {"hash": key, "result": to_plain(result)}
    if use_cache:
        _save_cache(cfg.root, cache)
    return CiOutcome(runs=runs, mismatches=mismatches, claims=list(cfg.claims))


def _input_hash(modules, cfg: CiConfig, model: str, facts: FactsFile | None) -> str:
    """Hash of every text a run parsed (imports included), the bounds, the model's interleaved
    budget and facts, and the apcheck version."""
    h = hashlib.sha256(f"{__version__}|{sorted(cfg.bounds.items())}|{cfg.interleaved_budget.get(model)}".encode())
    if facts is not None:
        h.update("\n".join(sorted(facts.facts)).encode())
    for module in modules:
        h.update(os.path.relpath(os.path.abspath(module.path), cfg.root).encode())
        h.update(module.text.encode())
    return h.hexdigest()


def compare(result: VerifyResult) -> list[Mismatch]:
    """Every property the gate fails on: one without an expectation, or one whose verdict fails
    by the results rule (PropertyResult.is_failure)."""
    out = []
    for p in result.properties:
        if p.expected is None:
            out.append(Mismatch(model=result.model, prop=p.name, expected=None, actual=str(p.verdict),
                                message=f"no expected verdict declared (add '{p.name}: {p.verdict}' to an expect "
                                        "block)"))
        elif p.is_failure:
            kind = ("new violation" if p.verdict == Verdict.VIOLATED else
                    "stale expectation" if p.expected in (Verdict.VIOLATED, Verdict.REACHED) else "verdict changed")
            out.append(Mismatch(model=result.model, prop=p.name, expected=p.expected, actual=str(p.verdict),
                                message=f"{kind}: {p.message}"))
    return out


# ---- the cache -----------------------------------------------------------------------

def _cache_file(root: str) -> str:
    return os.path.join(root, CACHE_DIR, "ci.json")


def _load_cache(root: str) -> tuple[dict, str | None]:
    """The cache, or an empty one with a note when it is unreadable or not of the expected shape."""
    path = _cache_file(root)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError) as err:
        return {}, f"cache {os.path.relpath(path)} unreadable ({err}); discarded, verifying everything"
    if not _valid_cache(data):
        return {}, f"cache {os.path.relpath(path)} is not an apcheck cache of version {CACHE_VERSION}; " \
                   "discarded, verifying everything"
    return data["models"], None


def _valid_cache(data) -> bool:
    """The cache's shape: {"version", "models": {model: {"hash", "result": a VerifyResult}}}."""
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("models"), dict):
        return False
    for entry in data["models"].values():
        if not (isinstance(entry, dict) and isinstance(entry.get("hash"), str)):
            return False
        try:
            from_plain(VerifyResult, entry.get("result"))
        except (TypeError, ValueError, KeyError):
            return False
    return True


def _save_cache(root: str, cache: dict) -> None:
    try:
        os.makedirs(os.path.join(root, CACHE_DIR), exist_ok=True)
        write_atomically(_cache_file(root), json.dumps({"version": CACHE_VERSION, "models": cache}, indent=1))
    except OSError:
        pass  # a read-only checkout just runs without the cache

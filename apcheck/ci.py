"""`apcheck ci`: verify every configured model and compare each verdict with its expectation.

Configuration: a `[tool.apcheck]` table in pyproject.toml (or the top level of
apcheck.toml) with `models`, `specs`, optional `bounds` and `claims`.
"""
from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from typing import Callable

from apcheck import __version__
from apcheck.diagnostics import UsageError
from apcheck.lang.loader import load
from apcheck.results import Verdict, VerifyResult

CACHE_DIR = ".apcheck-cache"


@dataclass
class CiConfig:
    root: str
    models: list[str]
    specs: list[str]
    bounds: dict[str, int] = field(default_factory=dict)
    claims: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Mismatch:
    model: str
    prop: str
    expected: str | None
    actual: str
    message: str


@dataclass
class ModelRun:
    model: str
    result: VerifyResult | None   # None when reused from the cache
    verdicts: dict[str, str]
    cached: bool


@dataclass
class CiOutcome:
    config: CiConfig
    runs: list[ModelRun]
    mismatches: list[Mismatch]

    @property
    def ok(self) -> bool:
        return not self.mismatches


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
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as err:
        raise UsageError(f"cannot read '{path}': {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{path}: {err}") from None
    table = data if path.endswith("apcheck.toml") else data.get("tool", {}).get("apcheck")
    if not isinstance(table, dict) or not table.get("models"):
        raise UsageError(f"{path}: no [tool.apcheck] table with a 'models' list")
    root = os.path.dirname(os.path.abspath(path))
    claims = [tuple(c) for c in table.get("claims", [])]
    return CiConfig(root, list(table["models"]), list(table.get("specs", [])),
                    {k: int(v) for k, v in table.get("bounds", {}).items()}, claims)


def input_hash(paths: list[str], bounds: dict[str, int]) -> str:
    """Hash of every file a run reads (imports included), the bounds and the apcheck version."""
    h = hashlib.sha256(f"{__version__}|{sorted(bounds.items())}".encode())
    for module in load(paths):
        h.update(module.path.encode())
        with open(module.path, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def run_ci(config_path: str | None, use_cache: bool = True,
           progress: Callable[[str], None] | None = None) -> CiOutcome:
    from apcheck.verify import VerifyConfig, load_program, verify
    cfg = find_config(config_path)
    cwd = os.getcwd()
    os.chdir(cfg.root)
    try:
        cache = _load_cache() if use_cache else {}
        runs, mismatches = [], []
        for model in cfg.models:
            key = input_hash([model] + cfg.specs, cfg.bounds)
            hit = cache.get(model)
            if use_cache and hit and hit["hash"] == key:
                runs.append(ModelRun(model, None, hit["verdicts"], True))
                mismatches += [Mismatch(**m) for m in hit["mismatches"]]
                if progress:
                    progress(f"{model}: unchanged, verdicts reused")
                continue
            if progress:
                progress(f"{model}: verifying")
            program = load_program(model, cfg.specs)
            result = verify(program, VerifyConfig(bounds=cfg.bounds), cfg.specs)
            found = compare(result)
            runs.append(ModelRun(model, result, {p.name: p.verdict for p in result.properties}, False))
            mismatches += found
            cache[model] = {"hash": key, "verdicts": runs[-1].verdicts,
                            "mismatches": [m.__dict__ for m in found]}
        _save_cache(cache)
        return CiOutcome(cfg, runs, mismatches)
    finally:
        os.chdir(cwd)


def compare(result: VerifyResult) -> list[Mismatch]:
    """Every property the gate fails on: one without an expectation, or one whose verdict fails
    by the results rule (PropertyResult.is_failure)."""
    out = []
    for p in result.properties:
        if p.expected is None:
            out.append(Mismatch(result.model, p.name, None, p.verdict,
                                f"no expected verdict declared (add '{p.name}: {p.verdict}' to an expect block)"))
        elif p.is_failure:
            kind = ("new violation" if p.verdict == Verdict.VIOLATED else
                    "stale expectation" if p.expected in (Verdict.VIOLATED, Verdict.REACHED) else "verdict changed")
            out.append(Mismatch(result.model, p.name, p.expected, p.verdict, f"{kind}: {p.message}"))
    return out


def _load_cache() -> dict:
    try:
        with open(os.path.join(CACHE_DIR, "ci.json"), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def _save_cache(cache: dict) -> None:
    try:
        os.makedirs(CACHE_DIR, exist_ok=True)
        with open(os.path.join(CACHE_DIR, "ci.json"), "w", encoding="utf-8") as fh:
            json.dump(cache, fh, indent=1)
    except OSError:
        pass  # a read-only checkout just runs without the cache

"""Result types shared by the back ends, the reports and the CLI."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum, IntEnum, StrEnum
from types import UnionType
from typing import Union, get_args, get_origin, get_type_hints

from apcheck.diagnostics import Span


class Verdict(StrEnum):
    """What a back end concluded about one property (docs/language.md, "Verdicts").

    Model and spec errors are not verdicts: they are diagnostics (exit status 2)."""

    HOLDS = "holds"              # every reachable state within the stated bounds explored
    PROVED = "proved"            # Z3, for every size
    VIOLATED = "violated"        # with a replayed trace (or a lock-order cycle)
    REACHED = "reached"          # a cover: with a replayed trace
    UNREACHABLE = "unreachable"  # a cover: no reachable state within the bounds satisfies it
    UNKNOWN = "unknown"          # a limit was hit, or Z3 said unknown


class Kind(StrEnum):
    INVARIANT = "invariant"
    COVER = "cover"
    LOCKORDER = "lockorder"
    DEADLOCK = "deadlock"
    DEFECTS = "defects"


class ExitStatus(IntEnum):
    """The CLI's exit status (README, "Exit status")."""

    OK = 0
    FAILED = 1      # a verdict fails (see is_failure)
    ERROR = 2       # a model, spec or usage error
    UNKNOWN = 3     # no failure, but some verdict is unknown
    INTERNAL = 4


WHOLE_SYSTEM = "whole system"   # the exploration of every top-level thread (a scenario is a part of it)


def exploration_title(name: str) -> str:
    """How a message names an exploration: "the whole system" or "scenario NAME"."""
    return "the whole system" if name == WHOLE_SYSTEM else f"scenario {name}"


VERDICT_ORDER = (Verdict.VIOLATED, Verdict.UNKNOWN, Verdict.REACHED, Verdict.UNREACHABLE, Verdict.HOLDS,
                 Verdict.PROVED)

# Verdicts that show something exists (a trace): a run of some scenarios can give them to the whole model.
_WITNESSED = (Verdict.VIOLATED, Verdict.REACHED)


VACUOUS = "vacuous"   # an expectation: the invariant holds only vacuously (PropertyResult.vacuous)


def satisfies(verdict: str, expected: str) -> bool:
    """Does the verdict meet the expectation? `proved` meets an expected `holds` (it claims more);
    a vacuous holds meets only an expected `vacuous`."""
    return verdict == expected or (expected == Verdict.HOLDS and verdict == Verdict.PROVED)


def whole_from_part(verdict: str) -> bool:
    """Does a run of a part of the system (a scenario, or below the bounds a property needs) give
    this verdict to the whole model? Only by what it shows: a violation or a reached cover (the
    whole system can do it too), or a proof (it does not depend on the run). What holds in a part,
    or trivially, may not hold in the whole."""
    return verdict in _WITNESSED or verdict == Verdict.PROVED


@dataclass(kw_only=True)
class Frame:
    function: str
    file: str
    line: int


@dataclass(kw_only=True)
class Site:
    """Where a lock was acquired: the statement and its call chain, outermost first."""

    lock: str
    span: Span
    text: str
    chain: list[Frame]


@dataclass(kw_only=True)
class LockEdge:
    src: str
    dst: str
    src_site: Site
    dst_site: Site
    reached: bool
    static: bool
    read: bool = False


@dataclass(kw_only=True)
class Change:
    var: str
    old: str
    new: str


@dataclass(kw_only=True)
class TraceStep:
    index: int
    thread: str
    op: str
    args: list[tuple[str, str]]
    span: Span
    text: str
    chain: list[Frame]
    outcome: str                 # "returned 0", "stopped before acquire ..." or a defect
    held: list[str]              # locks this thread holds after the step
    changes: list[Change]


@dataclass(kw_only=True)
class Trace:
    initial: list[tuple[str, str]]
    steps: list[TraceStep]
    final: list[str] = field(default_factory=list)   # what the final state means (who waits for what)
    certain_at: int | None = None   # a deadlock: the step after which it is certain (the rest runs into it)
    waiting: dict[str, str] = field(default_factory=dict)  # a deadlock: each stuck thread -> what it waits for


@dataclass(kw_only=True)
class Cti:
    """A counterexample to induction in concrete values (op None: a violating initial state)."""

    op: str | None
    args: list[tuple[str, str]]
    sizes: dict[str, int]
    state: list[tuple[str, str]]         # the state variables the invariants read, before the operation
    changes: list[Change] = field(default_factory=list)
    globals: tuple = ()                  # the state before, in the explorer's encoding at `sizes`


@dataclass(kw_only=True)
class InductionResult:
    """Z3's induction over the operations taken atomically, for every size."""

    status: str          # proved | cti | refuted | unknown | untranslatable | unused (a loop invariant)
    message: str
    cti: Cti | None = None
    hypothesis: list[str] = field(default_factory=list)   # the invariants assumed (proved: jointly)


@dataclass(frozen=True, kw_only=True)
class Method:
    """How a verdict was obtained: the engine, and for the explorer its bounds, scenarios and reductions."""

    engine: str                            # explicit-state | z3-unsat-core | z3-ranks | z3-induction | z3-interleaved
    bounds: tuple[tuple[str, int], ...] = ()
    scenarios: tuple[str, ...] = ()
    symmetry: bool = True
    reduction: bool = True
    then: Method | None = None             # z3-induction, z3-interleaved: the explorer's run it strengthened

    def __str__(self) -> str:
        if self.engine == "z3-unsat-core":
            return "z3 unsat core over reached edges"
        if self.engine == "z3-ranks":
            return "z3 rank certificate over every static acquisition path (all sizes)"
        if self.engine == "z3-induction":
            return f"Z3 induction (every size); {self.then}"
        if self.engine == "z3-interleaved":
            return f"Z3 induction over interleaved steps (every size, any number of threads); {self.then}"
        bounds = ", ".join(f"{k}={v}" for k, v in self.bounds)
        sym = "symmetry on" if self.symmetry else "symmetry off"
        return f"explicit-state ({bounds}; {sym}), {', '.join(exploration_title(s) for s in self.scenarios)}"


@dataclass(kw_only=True)
class PropertyResult:
    name: str
    kind: Kind
    verdict: Verdict
    method: Method
    message: str
    span: Span | None = None
    trace: Trace | None = None
    cycle: list[LockEdge] | None = None
    certificate: list[str] | None = None
    expected: str | None = None
    notes: list[str] = field(default_factory=list)
    scenario: str | None = None   # the scenario whose exploration gave the verdict (None: all, or static)
    induction: InductionResult | None = None   # invariants: Z3's result for every size
    hierarchy: list[str] | None = None   # lockorder: the declared order that `cycle` (one edge) violates
    partial: bool = False         # explored a scenario, a part of the system (verify --scenario)
    vacuous: str | None = None    # holds, but vacuously: why (an operation it depends on never completes)
    trivial: str | None = None    # holds, but trivially at these bounds: why (the bounds it needs)
    proof_not_tried: str | None = None   # holds, and no proof for any number of threads was tried: why

    @property
    def verdict_text(self) -> str:
        """The verdict as reports show it: with the scenario it is about, where a run of a scenario
        gives it, and why it is vacuous or trivial, where it is."""
        text = str(self.verdict)
        if self.partial and self.scenario and not whole_from_part(self.verdict):
            text += f" in {exploration_title(self.scenario)}"
        if self.vacuous:
            text += f" (vacuous: {self.vacuous})"
        if self.trivial:
            text += f" (trivial: {self.trivial})"
        return text

    @property
    def judged(self) -> bool:
        """Is there an expectation this verdict can be compared with? Not an expected `proved` where
        the run tried no proof for any number of threads and the explorer's verdict is `holds`."""
        if self.expected == Verdict.PROVED and self.verdict == Verdict.HOLDS and self.proof_not_tried:
            return False
        return self.expected is not None and (not (self.partial or self.trivial) or whole_from_part(self.verdict))

    @property
    def judged_verdict(self) -> str:
        """The verdict an expectation is compared with: `vacuous` for a vacuous holds."""
        return VACUOUS if self.verdict == Verdict.HOLDS and self.vacuous else self.verdict

    @property
    def mismatch(self) -> bool:
        """The verdict differs from an expectation it can decide."""
        return self.judged and not satisfies(self.judged_verdict, self.expected)

    @property
    def is_failure(self) -> bool:
        """The one rule every report, the exit status and `apcheck ci` use: a verdict fails when it
        differs from its expectation, or, with no expectation it can decide, when it is a violation."""
        return self.mismatch if self.judged else self.verdict == Verdict.VIOLATED


@dataclass(kw_only=True)
class OpCoverage:
    """An operation in one exploration: the times a step started it (ran its first statement), and
    the returns, all and successful (not an error code); and its automatic cover "OP completes":
    the steps to its first successful return, with that trace (None: never seen). Breadth-first,
    that is the fewest steps; with --dfs, the first path found."""

    op: str
    started: int
    returned: int
    succeeded: int
    completes: int | None = None
    trace: Trace | None = None


@dataclass(kw_only=True)
class StatementCoverage:
    """A statement of an operation the exploration ran (its instances at every call site added up)."""

    span: Span
    text: str
    executed: int   # the steps that executed it (a lock operation or wait: that took it)


@dataclass(kw_only=True)
class Coverage:
    """What one exploration executed, as TLC's coverage: per operation and per statement."""

    scenario: str
    bounds: dict[str, int]
    complete: bool                          # every reachable state was expanded (else: a lower bound)
    operations: list[OpCoverage]
    statements: list[StatementCoverage]

    @property
    def never_executed(self) -> list[StatementCoverage]:
        return [s for s in self.statements if not s.executed]


@dataclass(kw_only=True)
class Stats:
    states: int
    transitions: int
    depth: int
    seconds: float                 # wall time of the exploration (scenarios in parallel)
    states_per_second: float       # per search: states / search_seconds
    search_seconds: float = 0.0    # the scenarios' searches added up
    peak_memory_mb: float
    complete: bool
    limit: str | None
    symmetry: bool
    reduction: bool = True
    notes: list[str] = field(default_factory=list)   # on the exploration (e.g. a sort left out of symmetry)
    cores: list[str] = field(default_factory=list)   # the explorer cores that ran the searches (python, native)


@dataclass(kw_only=True)
class VerifyResult:
    model: str
    path: str
    specs: list[str]
    bounds: dict[str, int]
    scenarios: dict[str, list[str]]   # scenario -> its thread instances
    properties: list[PropertyResult]
    lock_edges: list[LockEdge]
    stats: Stats
    coverage: list[Coverage] = field(default_factory=list)   # one per exploration

    @property
    def worst(self) -> Verdict:
        verdicts = {p.verdict for p in self.properties}
        for v in VERDICT_ORDER:
            if v in verdicts:
                return v
        return Verdict.HOLDS


# ---- what the other commands return ------------------------------------------------

@dataclass(kw_only=True)
class OpChange:
    op: str
    procs: list[str]          # the procedures (the operation itself included) whose text changed


@dataclass(kw_only=True)
class VerdictChange:
    prop: str
    old: str | None           # None: the property is new
    new: str | None           # None: the property is gone
    message: str = ""


@dataclass(kw_only=True)
class ModelDiff:
    old: VerifyResult
    new: VerifyResult
    edges_added: list[LockEdge] = field(default_factory=list)
    edges_removed: list[LockEdge] = field(default_factory=list)
    ops_added: list[str] = field(default_factory=list)
    ops_removed: list[str] = field(default_factory=list)
    ops_changed: list[OpChange] = field(default_factory=list)
    verdicts: list[VerdictChange] = field(default_factory=list)

    @property
    def new_violations(self) -> list[VerdictChange]:
        return [v for v in self.verdicts if v.new == Verdict.VIOLATED and v.old != Verdict.VIOLATED]


@dataclass(kw_only=True)
class SplatEdge:
    held: str
    acquired: str
    frames: list[str]          # the acquiring stack, innermost first, lockdep's frames left out
    entry: int                 # lockdep's #N


@dataclass(kw_only=True)
class Splat:
    edges: list[SplatEdge]
    chain: list[str]           # the cycle as lockdep prints it in "Chain exists of"
    unread: list[str] = field(default_factory=list)   # what the report lacks or could not be read


@dataclass(kw_only=True)
class EdgeMatch:
    splat: SplatEdge
    status: str                # reached | static | absent | unknown-lock
    model: LockEdge | None = None
    common: list[str] = field(default_factory=list)   # functions on both call chains


@dataclass(kw_only=True)
class Explanation:
    matches: list[EdgeMatch]
    unread: list[str] = field(default_factory=list)   # parts of the report that could not be matched

    @property
    def explained(self) -> bool:
        return bool(self.matches) and not self.unread and all(m.status == "reached" for m in self.matches)


@dataclass(kw_only=True)
class Mismatch:
    model: str
    prop: str
    expected: str | None
    actual: str
    message: str


@dataclass(kw_only=True)
class ModelRun:
    model: str
    result: VerifyResult
    verdicts: dict[str, str]
    cached: bool                  # the result was reused from the cache (its inputs are unchanged)


@dataclass(kw_only=True)
class CiOutcome:
    runs: list[ModelRun]
    mismatches: list[Mismatch]
    claims: list[tuple[str, str]] = field(default_factory=list)   # the README table's (claim, property) rows

    @property
    def ok(self) -> bool:
        return not self.mismatches


def exit_status(properties: list[PropertyResult]) -> ExitStatus:
    """FAILED if a verdict fails, else UNKNOWN if a verdict is unknown, else OK."""
    if any(p.is_failure for p in properties):
        return ExitStatus.FAILED
    if any(p.verdict == Verdict.UNKNOWN for p in properties):
        return ExitStatus.UNKNOWN
    return ExitStatus.OK


# ---- results as plain data (the CI cache) ------------------------------------------

def to_plain(obj):
    """A result record as JSON-compatible data: records as dicts, enums as their values."""
    if is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def from_plain(tp, data):
    """The record of type `tp` that to_plain gave `data`; ValueError, TypeError or KeyError where the
    data does not have that shape."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, UnionType):
        if data is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return from_plain(inner, data)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(data)
    if isinstance(tp, type) and is_dataclass(tp):
        if not isinstance(data, dict):
            raise TypeError(f"{tp.__name__}: expected an object")
        hints = get_type_hints(tp)
        return tp(**{f.name: from_plain(hints[f.name], data[f.name]) for f in fields(tp) if f.init})
    if origin is list:
        return [from_plain(args[0], x) for x in _a(list, data)]
    if origin is dict:
        return {from_plain(args[0], k): from_plain(args[1], v) for k, v in _a(dict, data).items()}
    if origin is tuple:
        items = _a(list, data)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_plain(args[0], x) for x in items)
        return tuple(from_plain(a, x) for a, x in zip(args, items, strict=True))
    if tp is tuple:
        return _tuples(data)
    if tp in (int, float, str, bool):
        if not isinstance(data, tp) and not (tp is float and isinstance(data, int)):
            raise TypeError(f"expected {tp.__name__}, got {type(data).__name__}")
        return data
    return data


def _a(kind: type, data):
    if not isinstance(data, kind):
        raise TypeError(f"expected {kind.__name__}, got {type(data).__name__}")
    return data


def _tuples(data):
    return tuple(_tuples(x) for x in data) if isinstance(data, list) else data


@dataclass(kw_only=True)
class InferResult:
    """`apcheck infer`: candidate auxiliary invariants generated from the model, and what Z3 proved."""

    model: str
    candidates: int                      # generated and well-formed
    proved: list[str]                    # candidate invariants (the model's syntax), jointly inductive
    newly_proved: list[str]              # the model's invariants proved with them and not without
    proved_before: list[str]             # the model's invariants proved without them
    not_proved: list[tuple[str, str]]    # the model's invariants still not proved: (name, why)
    seconds: float = 0.0



@dataclass
class InferFactsResult:
    """`apcheck infer --interleaved`: the induction over the interleaved steps from every candidate."""

    model: str
    status: str                          # proved (some invariant) | not-proved | untranslatable | unknown
    message: str
    proved: list[str]                    # the model's invariants proved for any number of threads
    not_proved: list[tuple[str, str]]    # the others: (name, why)
    facts: list[str]                     # the facts kept besides the model's invariants
    seconds: float = 0.0
    started_from: str | None = None      # the facts file the fixpoint started from (None: every candidate)
    unmatched: list[str] = field(default_factory=list)   # its facts that no candidate has

# ---- apcheck extract: lock operations of kernel C, path by path (csource/extract.py) ----

@dataclass(frozen=True)
class LockEvent:
    op: str            # acquire | release | trylock | assert-held
    lock: str          # the lock class, as lockdep names it
    instance: str      # the lock expression, without `&`
    api: str           # mutex_lock, guard(mutex), ...
    mode: str          # exclusive | read
    file: str
    line: int
    via: tuple[str, ...] = ()   # the calls it was reached through, outermost first
    may_fail: bool = False      # an interruptible lock whose result the path does not test


@dataclass(frozen=True)
class Condition:
    text: str
    value: bool
    line: int


@dataclass
class CPath:
    events: list[LockEvent]
    conditions: list[Condition]
    end: int           # the line of the return (or of the closing brace)


@dataclass
class NotUnderstood:
    file: str
    line: int
    text: str
    why: str


@dataclass
class FunctionLocks:
    name: str
    file: str
    line: int
    paths: list[CPath]
    truncated: bool = False
    not_understood: list[NotUnderstood] = field(default_factory=list)

    @property
    def takes_locks(self) -> bool:
        return any(p.events for p in self.paths)


@dataclass
class Extraction:
    files: list[str]
    functions: list[FunctionLocks]
    not_understood: list[NotUnderstood]   # outside functions (parse errors at file level)


@dataclass(kw_only=True)
class DriftFinding:
    """One way a model procedure and the C function of the same name differ in their locking."""

    kind: str            # added | removed | reordered | trylock-now-blocking | blocking-now-trylock
                         # | null-check | not-modelled
    function: str        # the C function
    proc: str | None     # the model procedure (None: not-modelled)
    message: str
    c_site: tuple[str, int] | None = None       # (file, line) in the C source
    model_site: tuple[str, int] | None = None   # (file, line) in the model


@dataclass(kw_only=True)
class DriftReport:
    model: str
    sources: list[str]
    compared: list[tuple[str, str]]      # (model procedure, C function) pairs compared
    findings: list[DriftFinding]
    unmatched_procs: list[str]           # model procedures taking locks with no C function of their name
    not_understood: list[NotUnderstood]  # in the compared C functions

    @property
    def drifted(self) -> bool:
        return bool(self.findings)

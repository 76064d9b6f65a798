"""Result types shared by the back ends, the reports and the CLI."""
from __future__ import annotations

from dataclasses import dataclass, field

from apcheck.diagnostics import Span

VERDICT_ORDER = ("violated", "error", "unknown", "reached", "unreachable", "holds", "proved")


@dataclass
class Frame:
    function: str
    file: str
    line: int


@dataclass
class Site:
    """Where a lock was acquired: the statement and its call chain, outermost first."""

    lock: str
    span: Span
    text: str
    chain: list[Frame]


@dataclass
class LockEdge:
    src: str
    dst: str
    src_site: Site
    dst_site: Site
    reached: bool
    static: bool
    read: bool = False


@dataclass
class Change:
    var: str
    old: str
    new: str


@dataclass
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


@dataclass
class Trace:
    initial: list[tuple[str, str]]
    steps: list[TraceStep]
    final: list[str] = field(default_factory=list)   # what the final state means (who waits for what)


@dataclass
class Cti:
    """A counterexample to induction in concrete values (op None: a violating initial state)."""

    op: str | None
    args: list[tuple[str, str]]
    sizes: dict[str, int]
    state: list[tuple[str, str]]         # the state variables the invariants read, before the operation
    changes: list[Change] = field(default_factory=list)
    globals: tuple = ()                  # the state before, in the explorer's encoding at `sizes`


@dataclass
class InductionResult:
    """Z3's induction over the operations taken atomically, for every size."""

    status: str          # proved | cti | refuted | unknown | untranslatable
    message: str
    cti: Cti | None = None
    hypothesis: list[str] = field(default_factory=list)   # the invariants assumed (proved: jointly)


@dataclass
class PropertyResult:
    name: str
    kind: str          # invariant | cover | lockorder | deadlock | defects
    verdict: str       # holds | proved | violated | reached | unreachable | unknown | error
    method: str
    message: str
    span: Span | None = None
    trace: Trace | None = None
    cycle: list[LockEdge] | None = None
    certificate: list[str] | None = None
    expected: str | None = None
    notes: list[str] = field(default_factory=list)
    scenario: str | None = None   # the scenario whose exploration gave the verdict (None: all, or static)
    induction: InductionResult | None = None   # invariants: Z3's result for every size


@dataclass
class Stats:
    states: int
    transitions: int
    depth: int
    seconds: float
    states_per_second: float
    peak_memory_mb: float
    complete: bool
    limit: str | None
    symmetry: bool
    reduction: bool = True


@dataclass
class VerifyResult:
    model: str
    path: str
    specs: list[str]
    bounds: dict[str, int]
    scenarios: dict[str, list[str]]   # scenario -> its thread instances
    properties: list[PropertyResult]
    lock_edges: list[LockEdge]
    stats: Stats

    @property
    def worst(self) -> str:
        verdicts = {p.verdict for p in self.properties}
        for v in VERDICT_ORDER:
            if v in verdicts:
                return v
        return "holds"

"""Text -> AST. Syntax errors become diagnostics with the expected tokens in words."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

from dataclasses import fields
from typing import NamedTuple

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from apcheck.diagnostics import Diagnostic, DiagnosticError, Sources, Span
from apcheck.lang import ast as A


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("apcheck.lang").joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


MAX_NESTING = 2000  # statements and operators nested deeper are an error (E105), not a crash


def parse(text: str, path: str = "<input>") -> A.Module:
    """Parse one file's text into a Module; raise DiagnosticError on a syntax error or on nesting
    deeper than MAX_NESTING."""
    sources = Sources({path: text})
    try:
        tree = _parser().parse(text)
        items = _Builder(path).transform(tree)
    except UnexpectedInput as err:
        raise DiagnosticError([_syntax_diagnostic(err, text, path)], sources) from None
    except (RecursionError, VisitError) as err:  # Lark wraps what its callbacks raise in VisitError
        if isinstance(err, VisitError) and not isinstance(err.orig_exc, RecursionError):
            raise
        raise DiagnosticError([_too_deep(_deepest_line(text, path), None)], sources) from None
    module = A.Module(path, tuple(items.children if hasattr(items, "children") else items), text,
                      span=Span(path, 1, 1, 1, 1))
    depth, where = _nesting(module)
    if depth > MAX_NESTING:
        raise DiagnosticError([_too_deep(where, depth)], sources)
    return module


def _too_deep(span: Span, depth: int | None) -> Diagnostic:
    how = f"{depth} levels" if depth is not None else "too many levels"
    return Diagnostic("E105", f"nested too deeply ({how} of statements or operators; apcheck handles "
                      f"{MAX_NESTING}): split the expression or the procedure", span)


def _nesting(module: A.Module) -> tuple[int, Span]:
    """The deepest nesting of AST nodes, and the span of a deepest node (iterative: any depth)."""
    best, where = 0, module.span
    stack: list[tuple[object, int]] = [(module, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, A.Node):
            if depth > best:
                best, where = depth, node.span if node.span.line else where
            stack.extend((getattr(node, f.name), depth + 1) for f in fields(node) if f.name != "span")
        elif isinstance(node, tuple):
            stack.extend((x, depth) for x in node)
    return best, where


def _deepest_line(text: str, path: str) -> Span:
    """Where the parser ran out of depth: the line of the deepest bracket nesting, else the longest."""
    depth, best, line_of = 0, -1, 1
    for n, line in enumerate(text.splitlines(), 1):
        for ch in line:
            depth += ch in "{(["
            depth -= ch in "})]"
            if depth > best:
                best, line_of = depth, n
    lines = text.splitlines() or [""]
    if best <= 1:
        line_of = max(range(len(lines)), key=lambda i: len(lines[i])) + 1
    return Span(path, line_of, 1, line_of, len(lines[line_of - 1]) + 1)


# ---- syntax errors in human words --------------------------------------

_WORDS = {
    "NAME": "a name", "INT": "a number", "STRING": "a quoted path", "ERRNO": "an error name such as -EBUSY",
    "ARROW": "'->'", "QMARK": "'?'", "BANG": "'!'", "ASSIGN_OP": "':=', '+=' or '-='",
    "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'",
    "COLON": "':'", "SEMICOLON": "';'", "COMMA": "','", "DOT": "'.'", "EQUAL": "'='", "LESSTHAN": "'<'",
    "MORETHAN": "'>'", "VBAR": "'|'", "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "AMPERSAND": "'&'",
    "__ANON_0": "'::'", "$END": "end of file",
}


def _word(term: str) -> str:
    if term in _WORDS:
        return _WORDS[term]
    pattern = _parser().get_terminal(term).pattern if term in {t.name for t in _parser().terminals} else None
    if pattern is not None and pattern.type == "str":
        return f"'{pattern.value}'"
    return term.lower()


def _expected(err: UnexpectedInput) -> str:
    names = sorted({_word(t) for t in (getattr(err, "expected", None) or getattr(err, "allowed", None) or [])})
    keywords = [n for n in names if n.startswith("'")]
    others = [n for n in names if not n.startswith("'")]
    words = others + keywords
    if not words:
        return ""
    if len(words) > 12:
        words = words[:12] + ["..."]
    return "expected " + (words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1])


def _syntax_diagnostic(err: UnexpectedInput, text: str, path: str) -> Diagnostic:
    line, col = max(err.line, 1), max(err.column, 1)
    if isinstance(err, UnexpectedToken) and err.token.type == "$END" or isinstance(err, UnexpectedEOF):
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        msg = "unexpected end of file"
        width = 1
    elif isinstance(err, UnexpectedToken):
        msg = f"unexpected {_describe(err.token)}"
        width = max(1, len(str(err.token)))
    elif isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        return Diagnostic("E102", f"unexpected character {ch!r}", Span(path, line, col, line, col + 1))
    else:  # pragma: no cover - lark has no other subclasses today
        msg, width = "syntax error", 1
    exp = _expected(err)
    return Diagnostic("E101", msg + (f"; {exp}" if exp else ""), Span(path, line, col, line, col + width))


def _describe(tok: Token) -> str:
    if tok.type == "NAME":
        return f"name '{tok}'"
    if tok.type in ("INT", "STRING", "ERRNO"):
        return f"{_word(tok.type)[2:] if tok.type == 'INT' else _word(tok.type)} {tok}"
    return f"'{tok}'"


# ---- parse tree -> AST ------------------------------------------------

def _span(path: str, meta) -> Span:
    if getattr(meta, "empty", True):
        return Span(path, 0, 0, 0, 0)
    return Span(path, meta.line, meta.column, meta.end_line, meta.end_column)


def _tok_span(path: str, tok: Token) -> Span:
    return Span(path, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + len(tok))


_BINOPS = {
    "implies": "==>", "or_": "||", "and_": "&&", "eq": "==", "ne": "!=", "member": "in",
    "not_member": "notin", "subset": "<=", "union": "+", "diff": "-", "cross": "*", "intersect": "&",
}


class _Between:
    """The `between operations` qualifier of an invariant, while the parser assembles it."""


@v_args(meta=True)
class _Builder(Transformer):
    """Builds AST nodes; never raises semantic errors (those belong to the checker)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def __default__(self, data, children, meta):
        if data in _BINOPS:
            return A.Binary(_BINOPS[data], children[0], children[1], span=_span(self.path, meta))
        raise NotImplementedError(data)  # pragma: no cover - every rule has a callback

    def _s(self, meta) -> Span:
        return _span(self.path, meta)

    def start(self, meta, items):
        return list(items)

    # declarations
    def import_decl(self, meta, c):
        return A.Import(str(c[0])[1:-1], span=self._s(meta))

    def sort_decl(self, meta, c):
        return A.SortDecl(str(c[0]), int(c[1]) if len(c) > 1 else None, span=self._s(meta))

    def enum_decl(self, meta, c):
        return A.EnumDecl(str(c[0]), tuple(str(x) for x in c[1:]), span=self._s(meta))

    def var_decl(self, meta, c):
        name, typ, rest = str(c[0]), c[1], c[2:]
        init = next((x for x in rest if isinstance(x, A.Expr)), None)
        refs = [x for x in rest if isinstance(x, _GuardRef)]
        return A.VarDecl(name, typ, init, tuple(r.lock for r in refs), tuple(r.per for r in refs),
                         span=self._s(meta))

    def guard_ref(self, meta, c):
        return _GuardRef(c[0].text, str(c[1]) if len(c) > 1 else None)

    def lock_name(self, meta, c):
        out = str(c[0])
        for tok in c[1:]:
            out += "->" if tok.type == "ARROW" else ("." if out[-2:] != "->" else "") + str(tok)
        return _LockName(out, self._s(meta))

    def lock_decl(self, meta, c):
        per = str(c[1]) if len(c) == 3 else None
        return A.LockDecl(c[0].text, per, str(c[-1]), span=self._s(meta))

    def param(self, meta, c):
        return A.Param(str(c[0]), c[1], span=self._s(meta))

    def params(self, meta, c):
        return list(c)  # a list, where a block is a tuple (see _proc)

    def _proc(self, meta, c, is_op):
        params = next((tuple(x) for x in c[1:] if isinstance(x, list) and not isinstance(x, _Aka)), ())
        aka = next((tuple(x) for x in c[1:] if isinstance(x, _Aka)), ())
        body = next((x for x in c[1:] if isinstance(x, tuple)), None)
        return A.ProcDecl(str(c[0]), params, body, is_op, aka, span=self._s(meta))

    def aka(self, meta, c):
        return _Aka(str(x) for x in c)

    def proc_decl(self, meta, c):
        return self._proc(meta, c, False)

    def op_decl(self, meta, c):
        return self._proc(meta, c, True)

    def thread_decl(self, meta, c):
        count = 1
        names = [x for x in c if x.type == "NAME"]
        ints = [x for x in c if x.type == "INT"]
        if ints:
            count = int(ints[0])
        serial = any(x.type == "SERIAL" for x in c)
        return A.ThreadDecl(str(names[0]), count, tuple(str(n) for n in names[1:]), serial=serial,
                            span=self._s(meta))

    def scenario_thread(self, meta, c):
        """A thread of the whole system in a scenario: its count and operations default to the system's (0, ())."""
        names = [x for x in c if x.type == "NAME"]
        ints = [x for x in c if x.type == "INT"]
        return A.ThreadDecl(str(names[0]), int(ints[0]) if ints else 0, tuple(str(n) for n in names[1:]),
                            span=self._s(meta))

    def scenario_decl(self, meta, c):
        return A.ScenarioDecl(str(c[0]), tuple(c[1:]), span=self._s(meta))

    def unlocked(self, meta, c):
        return tuple(str(x) for x in c)

    def needs(self, meta, c):
        return A.Needs(tuple((str(c[i]), int(c[i + 1])) for i in range(0, len(c), 2)), span=self._s(meta))

    def between(self, meta, c):
        return _Between()

    def invariant_decl(self, meta, c):
        aux = bool(c) and getattr(c[0], "type", None) == "AUXILIARY"
        c = c[1:] if aux else c
        unlocked = next((x for x in c[1:-1] if isinstance(x, tuple)), ())
        needs = next((x for x in c[1:-1] if isinstance(x, A.Needs)), None)
        between = any(isinstance(x, _Between) for x in c[1:-1])
        return A.InvariantDecl(str(c[0]), c[-1], unlocked, aux, needs, between, span=self._s(meta))

    def loop_invariant_decl(self, meta, c):
        return A.LoopInvariantDecl(str(c[0]), str(c[1]), str(c[2]), c[3], span=self._s(meta))

    def cover_decl(self, meta, c):
        needs = next((x for x in c[1:-1] if isinstance(x, A.Needs)), None)
        return A.CoverDecl(str(c[0]), c[-1], needs, span=self._s(meta))

    def acyclic(self, meta, c):
        return None

    def hierarchy(self, meta, c):
        return tuple(x.text for x in c)

    def lockorder_decl(self, meta, c):
        return A.LockOrderDecl(str(c[0]), c[1], span=self._s(meta))

    def expect_entry(self, meta, c):
        return A.ExpectEntry(str(c[0]), str(c[1]), span=self._s(meta))

    def expect_decl(self, meta, c):
        return A.ExpectDecl(str(c[0]), tuple(c[1:]), span=self._s(meta))

    def for_models_decl(self, meta, c):
        names = tuple(str(x) for x in c if isinstance(x, Token))
        return A.ForModelsDecl(names, tuple(x for x in c if not isinstance(x, Token)), span=self._s(meta))

    # types
    def bool_type(self, meta, c):
        return A.BoolType(span=self._s(meta))

    def named_type(self, meta, c):
        return A.NamedType(str(c[0]), len(c) > 1, span=self._s(meta))

    def set_type(self, meta, c):
        return A.SetType((str(c[0]),), span=self._s(meta))

    def rel_type(self, meta, c):
        return A.SetType(tuple(str(x) for x in c), span=self._s(meta))

    def map_type(self, meta, c):
        keys = tuple(str(x) for x in c if isinstance(x, Token) and x.type == "NAME")
        return A.MapType(keys, c[-1], span=self._s(meta))

    # statements
    def block(self, meta, c):
        return tuple(c)

    def mode(self, meta, c):
        return str(c[0])

    def lock_ref(self, meta, c):
        return A.LockRef(c[0].text, c[1] if len(c) > 1 else None, span=self._s(meta))

    def acquire_stmt(self, meta, c):
        mode = c[0] if len(c) == 2 else "exclusive"
        return A.Acquire(c[-1], mode, span=self._s(meta))

    def release_stmt(self, meta, c):
        return A.Release(c[0], span=self._s(meta))

    def else_part(self, meta, c):
        return c[0] if isinstance(c[0], tuple) else (c[0],)

    def if_stmt(self, meta, c):
        return A.If(c[0], c[1], c[2] if len(c) > 2 else None, span=self._s(meta))

    def trylock_stmt(self, meta, c):
        negated = isinstance(c[0], Token)
        c = c[1:] if negated else c
        return A.IfTrylock(c[0], negated, c[1], c[2] if len(c) > 2 else None, span=self._s(meta))

    def for_stmt(self, meta, c):
        return A.For(str(c[0]), c[1], c[2], span=self._s(meta))

    def while_stmt(self, meta, c):
        return A.While(c[0], c[1], span=self._s(meta))

    def wait_stmt(self, meta, c):
        return A.Wait(c[0], c[1] if len(c) > 1 else None, span=self._s(meta))

    def yield_stmt(self, meta, c):
        return A.Yield(span=self._s(meta))

    def return_stmt(self, meta, c):
        return A.Return(c[0] if c else None, span=self._s(meta))

    def call(self, meta, c):
        return A.Call(str(c[0]), c[1] if len(c) > 1 else (), span=self._s(meta))

    def call_stmt(self, meta, c):
        return A.CallStmt(c[0], span=self._s(meta))

    def let_stmt(self, meta, c):
        typ = c[1] if len(c) == 3 else None
        return A.Let(str(c[0]), typ, c[-1], span=self._s(meta))

    def lvalue(self, meta, c):
        return (str(c[0]), c[1] if len(c) > 1 else (), self._s(meta))

    def assign_stmt(self, meta, c):
        name, idx, _ = c[0]
        return A.Assign(name, idx, str(c[1]), c[2], span=self._s(meta))

    def assert_stmt(self, meta, c):
        return A.Assert(c[0], span=self._s(meta))

    def args(self, meta, c):
        return tuple(c)

    # expressions
    def _quant(self, kind, meta, c):
        return A.Quantified(kind, c[0], c[1], span=self._s(meta))

    def forall(self, meta, c):
        return self._quant("forall", meta, c)

    def exists(self, meta, c):
        return self._quant("exists", meta, c)

    def binders(self, meta, c):
        return tuple(c)

    def sort_binder(self, meta, c):
        return A.Binder(str(c[0]), sort=str(c[1]), span=self._s(meta))

    def set_binder(self, meta, c):
        return A.Binder(str(c[0]), domain=c[1], span=self._s(meta))

    def comp_binders(self, meta, c):
        toks = list(c)
        return tuple(A.Binder(str(toks[i]), sort=str(toks[i + 1]), span=_tok_span(self.path, toks[i]))
                     for i in range(0, len(toks), 2))

    def comprehension(self, meta, c):
        return A.Comprehension(c[0], c[1], span=self._s(meta))

    def not_(self, meta, c):
        return A.Unary("!", c[-1], span=self._s(meta))

    def card(self, meta, c):
        return A.Unary("#", c[0], span=self._s(meta))

    def index(self, meta, c):
        return A.Index(c[0], c[1], span=self._s(meta))

    def name(self, meta, c):
        return A.Name(str(c[0]), span=self._s(meta))

    def true(self, meta, c):
        return A.BoolLit(True, span=self._s(meta))

    def false(self, meta, c):
        return A.BoolLit(False, span=self._s(meta))

    def null(self, meta, c):
        return A.NullLit(span=self._s(meta))

    def int_lit(self, meta, c):
        return A.IntLit(int(c[0]), span=self._s(meta))

    def errno(self, meta, c):
        return A.ErrnoLit(str(c[0])[1:], span=self._s(meta))

    def empty_set(self, meta, c):
        return A.SetLit((), span=self._s(meta))

    def set_lit(self, meta, c):
        return A.SetLit(c[0], span=self._s(meta))

    def tuple_lit(self, meta, c):
        return A.TupleLit((c[0],) + c[1], span=self._s(meta))


class _Aka(list):
    """The names after `aka`, passed between builder callbacks only."""


class _GuardRef(NamedTuple):
    lock: str
    per: str | None   # lock[Sort]: guarded per instance, by the entry's Sort key


class _LockName(str):
    """A lock name with its span, passed between builder callbacks only."""

    def __new__(cls, text: str, span: Span):
        obj = super().__new__(cls, text)
        obj.span = span
        return obj

    @property
    def text(self) -> str:
        return str.__str__(self)

"""The canonical layout of a file (`apcheck fmt`): AST (+ comments) -> text.

Parsing the output gives an equal AST, and formatting it again changes nothing.
Comments are kept: each is printed before the declaration or statement that
follows it, or at the end of the line it ended.
"""
from __future__ import annotations

import re

from apcheck.lang import ast as A

INDENT = "    "
# binding strength of each expression form (higher binds tighter)
LEVEL = {"quant": 0, "==>": 1, "||": 2, "&&": 3, "!": 4, "cmp": 5, "+": 6, "-": 6, "*": 7, "&": 8, "#": 9,
         "index": 10, "atom": 11}
CMP = {"==", "!=", "in", "notin", "<="}


def format_module(module: A.Module, text: str | None = None) -> str:
    """Canonical text; with the source `text`, comments and single blank lines are kept."""
    comments = scan_comments(text) if text is not None else []
    return _Printer(comments, (text or "").splitlines()).module(module)


def scan_comments(text: str) -> list[tuple[int, str]]:
    """(line, text) of every comment, skipping string literals."""
    out = []
    for m in re.finditer(r'"[^"\n]*"|//[^\n]*|/\*(?:.|\n)*?\*/', text):
        if m.group(0).startswith('"'):
            continue
        line = text.count("\n", 0, m.start()) + 1
        out.append((line, m.group(0).rstrip()))
    return out


class _Printer:
    def __init__(self, comments: list[tuple[int, str]], source: list[str]):
        self.comments = comments
        self.source = source
        self.next = 0
        self.lines: list[str] = []

    def blank_line_before(self, line: int) -> None:
        """Keep one blank line where the source had one before `line`."""
        if 1 < line <= len(self.source) + 1 and not self.source[line - 2].strip():
            if self.lines and self.lines[-1].strip() and not self.lines[-1].endswith("{"):
                self.lines.append("")

    # ---- comments ---------------------------------------------------------------

    def flush_before(self, line: int, indent: str) -> None:
        while self.next < len(self.comments) and self.comments[self.next][0] < line:
            self.blank_line_before(self.comments[self.next][0])
            self.lines.append(indent + self.comments[self.next][1])
            self.next += 1

    def flush_trailing(self, line: int) -> None:
        while self.next < len(self.comments) and self.comments[self.next][0] <= line:
            self.lines[-1] += "  " + self.comments[self.next][1]
            self.next += 1

    def emit(self, node: A.Node, indent: str, text: str, header: bool = False) -> None:
        """One output line for `node`; a header (of a block) takes trailing comments of its first line only."""
        if node.span.line:
            self.flush_before(node.span.line, indent)
            self.blank_line_before(node.span.line)
        self.lines.append(indent + text)
        if node.span.line:
            self.flush_trailing(node.span.line if header else node.span.end_line)

    # ---- declarations -----------------------------------------------------------

    def module(self, m: A.Module) -> str:
        for item in m.items:
            self.item(item)
        self.flush_before(10 ** 9, "")
        return "\n".join(self.lines).rstrip() + "\n"

    def item(self, it: A.Decl) -> None:
        if isinstance(it, A.ProcDecl):
            kw = "op" if it.is_op else "proc"
            params = ", ".join(f"{p.name}: {self.type(p.type)}" for p in it.params)
            aka = f" aka {', '.join(it.aka)}" if it.aka else ""
            if it.body is None:
                self.emit(it, "", f"{kw} {it.name}({params}){aka}", header=True)
                return
            self.emit(it, "", f"{kw} {it.name}({params}){aka} {{", header=True)
            self.block_body(it.body, INDENT, it.span.end_line)
            self.lines.append("}")
        elif isinstance(it, A.ScenarioDecl):
            self.braced(it, f"scenario {it.name}", [(t, self.thread(t)) for t in it.threads])
        elif isinstance(it, A.ForModelsDecl):
            self.braced(it, f"for {', '.join(it.models)}", [(x, self.simple_item(x)) for x in it.items])
        elif isinstance(it, A.ExpectDecl):
            self.braced(it, f"expect {it.model}", [(e, f"{e.prop}: {e.verdict}") for e in it.entries])
        else:
            self.emit(it, "", self.simple_item(it))

    def braced(self, it: A.Decl, header: str, lines: list[tuple[A.Node, str]]) -> None:
        """A block of one-line entries: `header {`, the entries indented, `}`."""
        self.emit(it, "", header + " {", header=True)
        for node, text in lines:
            self.emit(node, INDENT, text)
        self.flush_before(it.span.end_line, INDENT)
        self.lines.append("}")

    def thread(self, t: A.ThreadDecl) -> str:
        count = f"[{t.count}]" if t.count not in (0, 1) else ""   # 0: a scenario's thread, the system's count
        return f"thread {t.name}{count}" + (" serial" if t.serial else "") + \
            (f" runs {', '.join(t.ops)}" if t.ops else "")

    def simple_item(self, it: A.Decl) -> str:
        if isinstance(it, A.Import):
            return f'import "{it.path}"'
        if isinstance(it, A.SortDecl):
            return f"sort {it.name}" + (f" bound {it.bound}" if it.bound is not None else "")
        if isinstance(it, A.EnumDecl):
            return f"enum {it.name} {{ {', '.join(it.members)} }}"
        if isinstance(it, A.VarDecl):
            out = f"var {it.name}: {self.type(it.type)}"
            if it.init is not None:
                out += f" = {self.expr(it.init)}"
            if it.guard:
                per = it.guard_per or (None,) * len(it.guard)
                out += " guarded_by " + ", ".join(g + (f"[{s}]" if s else "") for g, s in zip(it.guard, per))
            return out
        if isinstance(it, A.LockDecl):
            return f"lock {it.name}" + (f"[{it.per}]" if it.per else "") + f": {it.kind}"
        if isinstance(it, A.ThreadDecl):
            return self.thread(it)
        if isinstance(it, A.InvariantDecl):
            unlocked = f" unlocked({', '.join(it.unlocked)})" if it.unlocked else ""
            aux = "auxiliary " if it.auxiliary else ""
            between = " between operations" if it.between else ""
            return f"{aux}invariant {it.name}{unlocked}{between}{_needs(it.needs)}: {self.expr(it.expr)}"
        if isinstance(it, A.CoverDecl):
            return f"cover {it.name}{_needs(it.needs)}: {self.expr(it.expr)}"
        if isinstance(it, A.LoopInvariantDecl):
            return f"loop invariant {it.name} at {it.proc}.{it.var}: {self.expr(it.expr)}"
        if isinstance(it, A.LockOrderDecl):
            claim = "acyclic" if it.hierarchy is None else " < ".join(it.hierarchy)
            return f"lockorder {it.name}: {claim}"
        raise AssertionError(it)  # pragma: no cover

    def type(self, t: A.TypeExpr) -> str:
        return type_text(t)

    # ---- statements ---------------------------------------------------------------

    def block_body(self, stmts, indent: str, end_line: int) -> None:
        for s in stmts:
            self.stmt(s, indent)
        if end_line:
            self.flush_before(end_line, indent)

    def lock(self, ref: A.LockRef) -> str:
        return ref.name + (f"[{self.expr(ref.index)}]" if ref.index is not None else "")

    def stmt(self, s: A.Stmt, indent: str) -> None:
        if isinstance(s, (A.If, A.IfTrylock)):
            self.if_chain(s, indent, "")
            return
        if isinstance(s, A.For):
            self.emit(s, indent, f"for {s.var} in {self.expr(s.domain)} {{", header=True)
            self.block_body(s.body, indent + INDENT, s.span.end_line)
            self.lines.append(indent + "}")
            return
        if isinstance(s, A.While):
            self.emit(s, indent, f"while {self.expr(s.cond)} {{", header=True)
            self.block_body(s.body, indent + INDENT, s.span.end_line)
            self.lines.append(indent + "}")
            return
        self.emit(s, indent, self.simple_stmt(s))

    def if_chain(self, s, indent: str, prefix: str) -> None:
        if isinstance(s, A.If):
            head = f"{prefix}if {self.expr(s.cond)} {{"
            then, orelse = s.then, s.orelse
        else:
            head = f"{prefix}if {'!' if s.negated else ''}trylock {self.lock(s.lock)} {{"
            then, orelse = s.then, s.orelse
        if prefix:  # "} X" left by the enclosing if: replace the X
            self.lines[-1] = self.lines[-1][:-1] + head
            self.flush_trailing(s.span.line)
        else:
            self.emit(s, indent, head, header=True)
        end = orelse[0].span.line if orelse else s.span.end_line
        self.block_body(then, indent + INDENT, end)
        self.lines.append(indent + "}")
        if orelse is None:
            return
        if len(orelse) == 1 and isinstance(orelse[0], (A.If, A.IfTrylock)):
            self.lines[-1] = indent + "} X"
            self.if_chain(orelse[0], indent, "else ")
            return
        self.lines[-1] = indent + "} else {"
        self.block_body(orelse, indent + INDENT, s.span.end_line)
        self.lines.append(indent + "}")

    def simple_stmt(self, s: A.Stmt) -> str:
        if isinstance(s, A.Acquire):
            mode = "" if s.mode == "exclusive" else s.mode + " "
            return f"acquire {mode}{self.lock(s.lock)}"
        if isinstance(s, A.Release):
            return f"release {self.lock(s.lock)}"
        if isinstance(s, A.Wait):
            rel = f" releasing {self.lock(s.releasing)}" if s.releasing else ""
            return f"wait until {self.expr(s.cond)}{rel}"
        if isinstance(s, A.Yield):
            return "yield"
        if isinstance(s, A.Return):
            return "return" + (f" {self.expr(s.value)}" if s.value is not None else "")
        if isinstance(s, A.CallStmt):
            return self.call(s.call)
        if isinstance(s, A.Let):
            typ = f": {self.type(s.type)}" if s.type else ""
            val = self.call(s.value) if isinstance(s.value, A.Call) else self.expr(s.value)
            return f"let {s.name}{typ} = {val}"
        if isinstance(s, A.Assign):
            target = s.target + (f"[{', '.join(self.expr(i) for i in s.indices)}]" if s.indices else "")
            val = self.call(s.value) if isinstance(s.value, A.Call) else self.expr(s.value)
            return f"{target} {s.op} {val}"
        if isinstance(s, A.Assert):
            return f"assert {self.expr(s.cond)}"
        raise AssertionError(s)  # pragma: no cover

    def call(self, c: A.Call) -> str:
        return f"call {c.proc}({', '.join(self.expr(a) for a in c.args)})"

    # ---- expressions -------------------------------------------------------------

    def expr(self, e: A.Expr, need: int = 0) -> str:
        text, level = self._expr(e)
        return f"({text})" if level < need else text

    def _expr(self, e: A.Expr) -> tuple[str, int]:
        if isinstance(e, A.Name):
            return e.name, LEVEL["atom"]
        if isinstance(e, A.BoolLit):
            return ("true" if e.value else "false"), LEVEL["atom"]
        if isinstance(e, A.NullLit):
            return "null", LEVEL["atom"]
        if isinstance(e, A.IntLit):
            return str(e.value), LEVEL["atom"]
        if isinstance(e, A.ErrnoLit):
            return f"-{e.name}", LEVEL["atom"]
        if isinstance(e, A.SetLit):
            return "{" + ", ".join(self.expr(i) for i in e.items) + "}", LEVEL["atom"]
        if isinstance(e, A.TupleLit):
            return "(" + ", ".join(self.expr(i) for i in e.items) + ")", LEVEL["atom"]
        if isinstance(e, A.Comprehension):
            bs = ", ".join(f"{b.name}: {b.sort}" for b in e.binders)
            return "{" + bs + " | " + self.expr(e.cond) + "}", LEVEL["atom"]
        if isinstance(e, A.Quantified):
            bs = ", ".join(f"{b.name}: {b.sort}" if b.sort else f"{b.name} in {self.expr(b.domain, LEVEL['+'])}"
                           for b in e.binders)
            return f"{e.kind} {bs} :: {self.expr(e.body)}", LEVEL["quant"]
        if isinstance(e, A.Index):
            return f"{self.expr(e.base, LEVEL['index'])}[{', '.join(self.expr(a) for a in e.args)}]", LEVEL["index"]
        if isinstance(e, A.Unary):
            lvl = LEVEL[e.op]
            return f"{e.op}{self.expr(e.operand, lvl)}", lvl
        if isinstance(e, A.Binary):
            return self._binary(e)
        raise AssertionError(e)  # pragma: no cover

    def _binary(self, e: A.Binary) -> tuple[str, int]:
        op = e.op
        if op in CMP:
            lvl = LEVEL["cmp"]
            word = {"notin": "not in"}.get(op, op)
            return f"{self.expr(e.left, lvl + 1)} {word} {self.expr(e.right, lvl + 1)}", lvl
        lvl = LEVEL[op]
        if op == "==>":
            return f"{self.expr(e.left, lvl + 1)} ==> {self.expr(e.right, 0)}", lvl
        return f"{self.expr(e.left, lvl)} {op} {self.expr(e.right, lvl + 1)}", lvl


def type_text(t: A.TypeExpr) -> str:
    """A type as written in the language."""
    if isinstance(t, A.BoolType):
        return "bool"
    if isinstance(t, A.NamedType):
        return t.name + ("?" if t.optional else "")
    if isinstance(t, A.SetType):
        return (f"set<{t.sorts[0]}>" if len(t.sorts) == 1 else f"rel<{', '.join(t.sorts)}>")
    if isinstance(t, A.MapType):
        return f"map<{', '.join(t.keys)} -> {type_text(t.value)}>"
    raise AssertionError(t)  # pragma: no cover


def _needs(needs: A.Needs | None) -> str:
    return f" needs {', '.join(f'{s}={n}' for s, n in needs.bounds)}" if needs else ""

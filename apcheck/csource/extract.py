"""Lock operations on every path of every function of kernel C files, read with tree-sitter.

No preprocessing: the files are parsed as they are in the tree (tree-sitter's C
grammar keeps going where macros make the text not quite C). Each function body
is first lowered to a small list of instructions (lock events, branches on a
condition, jumps, calls, returns), then its paths are enumerated:

- `mutex_*`, `down_*`/`up_*`, `spin_*` (irq, irqsave, bh, raw) and
  `lockdep_assert_held*` calls are events; a trylock or an interruptible lock
  in an `if` condition takes the lock on the branch where it succeeded;
- `guard(kind)(&lock)` takes the lock until the end of the enclosing block,
  `scoped_guard(kind, &lock) { ... }` for the block: each exit of the scope
  (its end, a `return`, a `goto` out of it, a `break`) releases it;
- `if`, `switch`, `goto` and labels, `return`, `break`, `continue`; a loop
  (`for`, `while`, `do`, and iterator macros such as `list_for_each_entry`)
  runs its body at most once on a path;
- a call to a function defined in the files given is followed into it (its
  paths are spliced in, with the call chain), so helpers such as
  `get_update_locks_for_kvm` compose;
- what is not understood (a parse error, a block after a macro that is not a
  known iterator, a call of a macro defined in the files that takes a lock)
  is listed with its line, never dropped silently.

Lock expressions become lock classes as lockdep names them: the `&` dropped
and the last member access kept (`&matrix_mdev->kvm->lock` is class
`kvm->lock`, instance `matrix_mdev->kvm->lock`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from apcheck.diagnostics import UsageError
from apcheck.results import Condition, CPath, Extraction, FunctionLocks, LockEvent, NotUnderstood

MAX_PATHS = 256      # distinct lock sequences kept per function (the rest: truncated)
MAX_CALL_DEPTH = 8

# API -> (operation, mode, may fail when used outside a condition)
LOCK_APIS: dict[str, tuple[str, str]] = {}
for _name in ("mutex_lock", "mutex_lock_nested", "mutex_lock_io"):
    LOCK_APIS[_name] = ("acquire", "exclusive")
for _name in ("mutex_lock_interruptible", "mutex_lock_killable", "mutex_lock_interruptible_nested",
              "down_read_interruptible", "down_read_killable", "down_write_killable"):
    LOCK_APIS[_name] = ("acquire-may-fail", "read" if "read" in _name else "exclusive")
for _name in ("mutex_trylock", "down_write_trylock", "spin_trylock", "spin_trylock_irq", "spin_trylock_bh",
              "raw_spin_trylock"):
    LOCK_APIS[_name] = ("trylock", "exclusive")
LOCK_APIS["down_read_trylock"] = ("trylock", "read")
for _name in ("down_write", "down_write_nested"):
    LOCK_APIS[_name] = ("acquire", "exclusive")
for _name in ("down_read", "down_read_nested"):
    LOCK_APIS[_name] = ("acquire", "read")
for _suffix in ("", "_irq", "_irqsave", "_bh", "_nested", "_irqsave_nested"):
    LOCK_APIS["spin_lock" + _suffix] = ("acquire", "exclusive")
    LOCK_APIS["raw_spin_lock" + _suffix] = ("acquire", "exclusive")
for _suffix in ("", "_irq", "_irqrestore", "_bh"):
    LOCK_APIS["spin_unlock" + _suffix] = ("release", "exclusive")
    LOCK_APIS["raw_spin_unlock" + _suffix] = ("release", "exclusive")
for _name in ("mutex_unlock", "up_write"):
    LOCK_APIS[_name] = ("release", "exclusive")
LOCK_APIS["up_read"] = ("release", "read")
for _name in ("lockdep_assert_held", "lockdep_assert_held_once"):
    LOCK_APIS[_name] = ("assert-held", "exclusive")
LOCK_APIS["lockdep_assert_held_write"] = ("assert-held", "exclusive")
LOCK_APIS["lockdep_assert_held_read"] = ("assert-held", "read")

# Macros that take a type among their arguments (which tree-sitter cannot parse as an expression).
TYPE_MACROS = frozenset({"container_of", "container_of_const", "list_entry", "list_first_entry",
                         "list_last_entry", "list_first_entry_or_null", "list_next_entry", "list_prev_entry",
                         "hlist_entry", "hlist_entry_safe", "offsetof", "sizeof", "typeof", "__typeof__",
                         "kmalloc_obj", "struct_size", "va_arg"})
ITERATOR = re.compile(r"(^|_)for_each(_|$)|^list_for_each|^hlist_for_each|^for_each_")


def lock_class(expr: str) -> tuple[str, str]:
    """(class, instance) of a lock argument, the class as lockdep names it (after the expression its
    init call takes, `&kvm->lock`): the struct pointer the lock is reached from last and the member
    path after it. `&matrix_mdev->kvm->lock` -> (`kvm->lock`, `matrix_mdev->kvm->lock`);
    `&vcpu->kvm->arch.crypto.pqap_hook_rwsem` -> `kvm->arch.crypto.pqap_hook_rwsem`; `&(&q->lock)`
    and parentheses are unwrapped; a global lock is its name."""
    text = re.sub(r"\s+", "", expr)
    while True:
        new = text
        if new.startswith("&"):
            new = new[1:]
        if new.startswith("(") and new.endswith(")") and _balanced(new[1:-1]):
            new = new[1:-1]
        if new == text:
            break
        text = new
    parts = text.split("->")
    if len(parts) >= 2:
        owner = re.sub(r"\[.*$", "", parts[-2]).split(".")[-1]
        return f"{owner}->{parts[-1]}", text
    return text, text


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def _parser():
    try:
        import tree_sitter_c
        from tree_sitter import Language, Parser
    except ImportError:  # pragma: no cover - a dependency of the package
        raise UsageError("apcheck extract needs the Python packages tree-sitter and tree-sitter-c "
                         "(pip install tree-sitter tree-sitter-c)") from None
    return Parser(Language(tree_sitter_c.language()))


@dataclass
class Units:
    """C files parsed: their function definitions, the macros among them that take a lock, and what
    tree-sitter could not parse outside a function."""
    paths: list[str]
    defs: dict[str, tuple[str, object]]       # name -> (file, function_definition node)
    macros: dict[str, tuple[str, int]]        # name -> (file, line)
    outside: list[NotUnderstood]


def read_units(paths: list[str]) -> Units:
    """Parse the files (a file that cannot be read is a usage error)."""
    parser = _parser()
    units = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as err:
            raise UsageError(f"cannot read '{path}': {err.strerror or err}") from None
        units.append((path, data, parser.parse(data)))
    defs: dict[str, tuple[str, object]] = {}
    macros: dict[str, tuple[str, int]] = {}
    outside: list[NotUnderstood] = []
    for path, data, tree in units:
        for node in tree.root_node.children:
            if node.type == "function_definition":
                name = function_name(node)
                if name:
                    defs[name] = (path, node)
            elif node.type == "preproc_function_def":
                name = node.child_by_field_name("name")
                body = node.child_by_field_name("value")
                if name is not None and body is not None and any(
                        re.search(rf"\b{re.escape(api)}\s*\(", body.text.decode(errors="replace"))
                        for api in LOCK_APIS):
                    macros[name.text.decode()] = (path, node.start_point[0] + 1)
            elif node.type == "ERROR":
                outside.append(NotUnderstood(path, node.start_point[0] + 1, snippet(node),
                                             "not C that tree-sitter can parse"))
    return Units(list(paths), defs, macros, outside)


def extract(paths: list[str]) -> Extraction:
    """Every function of the files, with the lock events of each of its paths."""
    return extract_units(read_units(paths))


def extract_units(units: Units) -> Extraction:
    defs = units.defs
    lowered = {name: _Lowering(path, node, defs, units.macros).run() for name, (path, node) in defs.items()}
    walker = _Paths(lowered)
    functions = []
    for name, (path, node) in defs.items():
        paths_, truncated = walker.paths(name)
        functions.append(FunctionLocks(name=name, file=path, line=node.start_point[0] + 1, paths=paths_,
                                       truncated=truncated, not_understood=walker.not_understood(name)))
    functions.sort(key=lambda f: (f.file, f.line))
    return Extraction(files=list(units.paths), functions=functions, not_understood=units.outside)


def function_name(node) -> str | None:
    decl = node.child_by_field_name("declarator")
    while decl is not None and decl.type != "function_declarator":
        decl = decl.child_by_field_name("declarator")
    if decl is None:
        return None
    ident = decl.child_by_field_name("declarator")
    return ident.text.decode() if ident is not None else None


def snippet(node) -> str:
    text = node.text.decode(errors="replace").strip().splitlines()
    return (text[0] if text else "")[:80]


# ---- lowering a function body ----------------------------------------------------------

@dataclass
class _Ins:
    kind: str                     # event | branch | jump | call | return | note
    line: int
    event: LockEvent | None = None
    cond: str = ""
    target: int = -1              # branch: where control goes when the condition is false; jump
    on_true: LockEvent | None = None    # branch: taken on the true side (a trylock that succeeded)
    on_false: LockEvent | None = None
    callee: str = ""
    dest: int = -1                # case: where control goes when the case matches
    rename: tuple = ()            # call: (parameter, argument text) pairs
    note: NotUnderstood | None = None


@dataclass
class _Guard:
    event: LockEvent
    scope: int                    # id of the block it was declared in


class _Lowering:
    def __init__(self, path: str, fn, defs: dict, macros: dict):
        self.path, self.fn, self.defs, self.macros = path, fn, defs, macros
        self.code: list[_Ins] = []
        self.labels: dict[str, int] = {}
        self.fixups: list[tuple[int, str]] = []
        self.guards: list[_Guard] = []
        self.scopes: list[int] = []
        self.label_scopes: dict[str, set[int]] = {}
        self.loops: list[tuple[list[int], list[int], int]] = []   # (break fixups, continue fixups, guards depth)

    def run(self) -> list[_Ins]:
        body = self.fn.child_by_field_name("body")
        self._label_scopes(body, [])
        self.stmt(body)
        end = body.end_point[0] + 1
        self.code.append(_Ins("return", end))
        for at, label in self.fixups:
            if label in self.labels:
                self.code[at].target = self.labels[label]
            else:
                self.code[at] = _Ins("note", self.code[at].line, note=NotUnderstood(
                    self.path, self.code[at].line, f"goto {label}", "a label this function does not have"))
        return self.code

    def _label_scopes(self, node, scopes: list[int]) -> None:
        if node.type == "compound_statement":
            scopes = scopes + [node.id]
        if node.type == "labeled_statement":
            label = node.child_by_field_name("label")
            if label is not None:
                self.label_scopes[label.text.decode()] = set(scopes)
        for c in node.children:
            self._label_scopes(c, scopes)

    def emit(self, ins: _Ins) -> int:
        self.code.append(ins)
        return len(self.code) - 1

    def line(self, node) -> int:
        return node.start_point[0] + 1

    def not_understood(self, node, why: str) -> None:
        self.emit(_Ins("note", self.line(node), note=NotUnderstood(self.path, self.line(node), snippet(node), why)))

    # statements

    def stmt(self, node) -> None:
        t = node.type
        if t == "compound_statement":
            self.block(node)
        elif t == "expression_statement":
            for c in node.named_children:
                self.expr(c)
        elif t == "declaration":
            for c in node.named_children:
                if c.type == "init_declarator":
                    value = c.child_by_field_name("value")
                    if value is not None:
                        self.expr(value)
        elif t == "if_statement":
            self.if_stmt(node)
        elif t in ("for_statement", "while_statement", "do_statement"):
            self.loop(node)
        elif t == "return_statement":
            for c in node.named_children:
                self.expr(c)
            self.release_guards(lambda g: True)
            self.emit(_Ins("return", self.line(node)))
        elif t == "goto_statement":
            label = node.child_by_field_name("label").text.decode()
            keep = self.label_scopes.get(label, set())
            self.release_guards(lambda g: g.scope not in keep)
            self.fixups.append((self.emit(_Ins("jump", self.line(node))), label))
        elif t == "labeled_statement":
            self.labels[node.child_by_field_name("label").text.decode()] = len(self.code)
            for c in node.named_children[1:]:
                self.stmt(c)
        elif t in ("break_statement", "continue_statement"):
            if self.loops:
                fixups, conts, depth = self.loops[-1]
                self.release_guards(lambda g: self.guards.index(g) >= depth)
                (fixups if t == "break_statement" else conts).append(self.emit(_Ins("jump", self.line(node))))
        elif t == "switch_statement":
            self.switch(node)
        elif t == "function_definition":  # `name(args) { ... }` read as a nested definition
            name = node.children[0].text.decode() if node.children else "?"
            body = node.child_by_field_name("body")
            if ITERATOR.search(name):
                self.iterate(node, name, body)
            else:
                self.not_understood(node, f"a block after the macro {name}(), which is not a known iterator")
                self.stmt(body)
        elif t == "ERROR":
            self.not_understood(node, "not C that tree-sitter can parse")
        elif t in ("comment", ";", "preproc_call", "preproc_if", "preproc_ifdef"):
            for c in node.named_children:
                if c.type not in ("comment", "identifier", "preproc_arg"):
                    self.stmt(c)
        # anything else (typedefs, empty statements) takes no lock

    def block(self, node) -> None:
        self.scopes.append(node.id)
        depth = len(self.guards)
        children = [c for c in node.named_children if c.type != "comment"]
        i = 0
        while i < len(children):
            c = children[i]
            nxt = children[i + 1] if i + 1 < len(children) else None
            if self.macro_block(c, nxt):
                i += 2
                continue
            self.stmt(c)
            i += 1
        self.release_guards(lambda g: self.guards.index(g) >= depth, pop=True)
        self.scopes.pop()

    def macro_block(self, node, nxt) -> bool:
        """`name(args) { ... }`: an iterator macro (a loop), scoped_guard, or not understood."""
        found = macro_call(node, nxt)
        if found is None:
            return False
        call, name, args = found
        if name == "scoped_guard" and len(args) >= 2:
            ev = self.event("acquire", args[1], f"scoped_guard({args[0].text.decode()})",
                            "read" if "read" in args[0].text.decode() else "exclusive", call)
            self.emit(_Ins("event", ev.line, event=ev))
            self.guards.append(_Guard(ev, nxt.id))
            depth = len(self.guards) - 1
            self.scopes.append(nxt.id)
            self.loops.append(([], [], depth))  # break leaves a scoped_guard (a for loop in the macro)
            self.block_body(nxt)
            brk, conts, _ = self.loops.pop()
            self.scopes.pop()
            for at in brk + conts:
                self.code[at].target = len(self.code)
            self.release_guards(lambda g: self.guards.index(g) >= depth, pop=True)
            return True
        if ITERATOR.search(name):
            for a in args:
                self.expr(a)
            self.iterate(node, name, nxt)
            return True
        self.not_understood(node, f"a block after the macro {name}(), which is not a known iterator")
        self.stmt(nxt)
        return True

    def iterate(self, node, name: str, body) -> None:
        """An iterator macro's block: a loop whose body runs at most once on a path."""
        top = self.emit(_Ins("branch", self.line(node), cond=f"{name}(...) has an element"))
        self.loops.append(([], [], len(self.guards)))
        self.stmt(body)
        brk, conts, _ = self.loops.pop()
        for at in brk + conts:
            self.code[at].target = len(self.code)
        self.code[top].target = len(self.code)

    def block_body(self, node) -> None:
        for c in node.named_children:
            if c.type != "comment":
                self.stmt(c)

    def if_stmt(self, node) -> None:
        cond = node.child_by_field_name("condition")
        on_true, on_false = self.condition(cond)
        at = self.emit(_Ins("branch", self.line(node), cond=cond_text(cond), on_true=on_true, on_false=on_false))
        self.stmt(node.child_by_field_name("consequence"))
        alt = node.child_by_field_name("alternative")
        if alt is not None:
            skip = self.emit(_Ins("jump", self.line(alt)))
            self.code[at].target = len(self.code)
            for c in alt.named_children:
                self.stmt(c)
            self.code[skip].target = len(self.code)
        else:
            self.code[at].target = len(self.code)

    def condition(self, cond):
        """Lock calls in a condition: a trylock or an interruptible lock is taken on the side where it
        succeeded; other lock calls there are events before the branch."""
        found = []
        self._lock_calls(cond, 0, found)
        on_true = on_false = None
        for call, negations in found:
            name = call.child_by_field_name("function").text.decode()
            op, mode = LOCK_APIS[name]
            args = self.args(call)
            if not args:
                continue
            if op in ("trylock", "acquire-may-fail"):
                ev = self.event("acquire", args[0], name, mode, call)
                succeeds_if_true = (negations % 2 == 0) == (op == "trylock")
                if succeeds_if_true:
                    on_true = _tagged(ev, "trylock" if op == "trylock" else "acquire")
                else:
                    on_false = _tagged(ev, "trylock" if op == "trylock" else "acquire")
            else:
                self.lock_call(call)
        for c in _calls(cond):
            name = c.child_by_field_name("function").text.decode()
            if name not in LOCK_APIS:
                self.call(c)
        return on_true, on_false

    def _lock_calls(self, node, negations: int, out: list) -> None:
        if node.type == "call_expression":
            fn = node.child_by_field_name("function")
            if fn is not None and fn.text.decode() in LOCK_APIS:
                out.append((node, negations))
                return
        if node.type == "unary_expression" and node.children and node.children[0].type == "!":
            negations += 1
        for c in node.named_children:
            self._lock_calls(c, negations, out)

    def loop(self, node) -> None:
        """A loop's body runs at most once on a path."""
        cond = node.child_by_field_name("condition")
        if node.type == "for_statement":
            init = node.child_by_field_name("initializer")
            if init is not None:
                self.stmt(init) if init.type == "declaration" else self.expr(init)
        if node.type == "do_statement":
            self.loops.append(([], [], len(self.guards)))
            self.stmt(node.child_by_field_name("body"))
            brk, conts, _ = self.loops.pop()
            for at in brk + conts:
                self.code[at].target = len(self.code)
            return
        if cond is not None:
            self.expr(cond)
        top = self.emit(_Ins("branch", self.line(node), cond=cond_text(cond) if cond is not None else "true"))
        self.loops.append(([], [], len(self.guards)))
        self.stmt(node.child_by_field_name("body"))
        brk, conts, _ = self.loops.pop()
        for at in brk + conts:
            self.code[at].target = len(self.code)
        self.code[top].target = len(self.code)

    def switch(self, node) -> None:
        """Each case is a branch from the dispatch (falling through to the next case as C does);
        with no default, no case may match."""
        self.expr(node.child_by_field_name("condition"))
        body = node.child_by_field_name("body")
        cases = [c for c in body.named_children if c.type == "case_statement"]
        self.loops.append(([], [], len(self.guards)))
        dispatch = [self.emit(_Ins("case", self.line(c), cond=snippet(c).split(":")[0].strip())) for c in cases]
        fallback = self.emit(_Ins("jump", self.line(node)))
        default = None
        for c, at in zip(cases, dispatch):
            self.code[at].target = at + 1
            self.code[at].dest = len(self.code)
            value = c.child_by_field_name("value")
            if value is None:
                default = len(self.code)
            for s in c.named_children:
                if s is not value and s.type != "comment":
                    self.stmt(s)
        brk, conts, _ = self.loops.pop()
        end = len(self.code)
        for at in brk:
            self.code[at].target = end
        self.code[fallback].target = default if default is not None else end
        if self.loops:
            self.loops[-1][1].extend(conts)

    def release_guards(self, which, pop: bool = False) -> None:
        """Emit the releases of the guards `which` selects, innermost first (scope exit)."""
        for g in reversed(list(self.guards)):
            if which(g):
                ev = g.event
                self.emit(_Ins("event", ev.line, event=LockEvent("release", ev.lock, ev.instance, ev.api, ev.mode,
                                                               ev.file, ev.line)))
        if pop:
            self.guards = [g for g in self.guards if not which(g)]

    # expressions

    def expr(self, node) -> None:
        if node is None:
            return
        if node.type == "call_expression":
            fn = node.child_by_field_name("function")
            typed = fn.text.decode() in TYPE_MACROS
            for a in self.args(node):
                if not (typed and a.type == "ERROR"):  # a type argument, not an expression
                    self.expr(a)
            if fn.type == "call_expression" and fn.child_by_field_name("function").text.decode() == "guard":
                kind = self.args(fn)
                lock = self.args(node)
                if kind and lock:
                    text = kind[0].text.decode()
                    ev = self.event("acquire", lock[0], f"guard({text})", "read" if "read" in text else "exclusive",
                                    node)
                    self.emit(_Ins("event", ev.line, event=ev))
                    self.guards.append(_Guard(ev, self.scopes[-1] if self.scopes else 0))
                return
            name = fn.text.decode()
            if name in LOCK_APIS:
                self.lock_call(node)
            else:
                self.call(node)
            return
        if node.type == "ERROR":
            self.not_understood(node, "not C that tree-sitter can parse")
            return
        for c in node.named_children:
            self.expr(c)
        if node.type in ("assignment_expression", "update_expression"):
            target = node.child_by_field_name("left") or node.child_by_field_name("argument")
            if target is not None:
                self.emit(_Ins("assign", self.line(node), cond=_norm(target.text.decode())))

    def args(self, call) -> list:
        al = call.child_by_field_name("arguments")
        return [c for c in al.named_children if c.type != "comment"] if al is not None else []

    def event(self, op: str, arg, api: str, mode: str, node) -> LockEvent:
        cls, inst = lock_class(arg.text.decode())
        return LockEvent(op, cls, inst, api, mode, self.path, self.line(node))

    def lock_call(self, call) -> None:
        name = call.child_by_field_name("function").text.decode()
        op, mode = LOCK_APIS[name]
        args = self.args(call)
        if not args:
            self.not_understood(call, f"{name}() without a lock argument")
            return
        ev = self.event("trylock" if op == "trylock" else "acquire" if op == "acquire-may-fail" else op,
                        args[0], name, mode, call)
        if op == "acquire-may-fail":
            ev = LockEvent(ev.op, ev.lock, ev.instance, ev.api, ev.mode, ev.file, ev.line, may_fail=True)
        self.emit(_Ins("event", ev.line, event=ev))

    def call(self, call) -> None:
        name = call.child_by_field_name("function").text.decode()
        if name in self.defs:
            params = _param_names(self.defs[name][1])
            args = [_norm(a.text.decode()) for a in self.args(call)]
            self.emit(_Ins("call", self.line(call), callee=name, rename=tuple(zip(params, args))))
        elif name in self.macros:
            where = self.macros[name]
            self.not_understood(call, f"the macro {name}() (defined at {where[0]}:{where[1]}) takes a lock, "
                                      "and macros are not expanded")


def macro_call(node, nxt):
    """`name(args) { ... }` as tree-sitter reads it without the macro's definition: a call with no
    `;` followed by a block. (call, name, arguments), or None."""
    if node.type != "expression_statement" or nxt is None or nxt.type != "compound_statement":
        return None
    call = node.named_children[0] if node.named_children else None
    semi = node.children[-1] if node.children else None
    if call is None or call.type != "call_expression" or semi is None or not semi.is_missing:
        return None
    al = call.child_by_field_name("arguments")
    args = [c for c in al.named_children if c.type != "comment"] if al is not None else []
    return call, call.child_by_field_name("function").text.decode(), args


def _param_names(fn) -> list[str]:
    decl = fn.child_by_field_name("declarator")
    while decl is not None and decl.type != "function_declarator":
        decl = decl.child_by_field_name("declarator")
    out = []
    plist = decl.child_by_field_name("parameters") if decl is not None else None
    for prm in (plist.named_children if plist is not None else []):
        ident = [n for n in _walk_nodes(prm) if n.type == "identifier"]
        out.append(ident[-1].text.decode() if ident else "")
    return out


def _walk_nodes(node):
    yield node
    for c in node.children:
        yield from _walk_nodes(c)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def polarity(text: str) -> tuple[str, bool]:
    """A condition as (the tested expression, the value the branch needs): `!x` is (x, False)."""
    value = True
    text = _norm(text)
    while True:
        if text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
            text = text[1:-1].strip()
        elif text.startswith("!") and not text.startswith("!="):
            text, value = text[1:].strip(), not value
        else:
            return text, value


def _renamed(text: str, rename: tuple) -> str:
    for prm, arg in rename:
        if prm and re.fullmatch(r"[A-Za-z_][\w>\-.]*", arg):
            text = re.sub(rf"\b{re.escape(prm)}\b", arg, text)
    return text


def _tagged(ev: LockEvent, op: str) -> LockEvent:
    return LockEvent(op, ev.lock, ev.instance, ev.api, ev.mode, ev.file, ev.line)


def _calls(node):
    if node.type == "call_expression":
        yield node
    for c in node.named_children:
        yield from _calls(c)


def cond_text(node) -> str:
    text = re.sub(r"\s+", " ", node.text.decode(errors="replace")).strip()
    if text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1]
    return text


# ---- paths -------------------------------------------------------------------------------

class _Paths:
    """The paths of each function, calls to functions of the files followed into them."""

    def __init__(self, lowered: dict[str, list[_Ins]]):
        self.code = lowered
        self.memo: dict[str, tuple[list[CPath], bool]] = {}
        self.assigned = {name: {i.cond for i in code if i.kind == "assign"} for name, code in lowered.items()}
        self.notes: dict[str, list[NotUnderstood]] = {}
        self.active: list[str] = []

    def not_understood(self, name: str) -> list[NotUnderstood]:
        return self.notes.get(name, [])

    def paths(self, name: str) -> tuple[list[CPath], bool]:
        if name in self.memo:
            return self.memo[name]
        if name in self.active or len(self.active) >= MAX_CALL_DEPTH:
            return [CPath([], [], 0)], True
        self.active.append(name)
        try:
            result = self._walk(name)
        finally:
            self.active.pop()
        self.memo[name] = result
        return result

    def _walk(self, name: str) -> tuple[list[CPath], bool]:
        """Depth-first over the instructions. A condition tested again, word for word (a callee's
        with its parameters named by the call's arguments), with nothing assigned in between to
        what it names, goes the way it went: `if (w->kvm) lock(...)` ... `if (w->kvm) unlock(...)`
        has two paths, not four."""
        code = self.code[name]
        notes = self.notes.setdefault(name, [])
        seen_notes: set[int] = set()
        found: dict[tuple, CPath] = {}
        truncated = False
        stack = [(0, (), (), ())]
        visited: set[tuple] = set()
        while stack:
            pc, events, conds, known = stack.pop()
            key = (pc, events, known)
            if key in visited:
                continue
            visited.add(key)
            if len(found) >= MAX_PATHS:
                truncated = True
                break
            ins = code[pc]
            k = ins.kind
            if k == "return":
                unique = list(dict.fromkeys(conds))
                if events not in found:
                    found[events] = CPath(list(events), unique, ins.line)
                else:  # the conditions every path with this lock sequence has
                    keep = set(unique)
                    found[events].conditions = [c for c in found[events].conditions if c in keep]
                continue
            if k == "event":
                stack.append((pc + 1, events + (ins.event,), conds, known))
            elif k == "assign":
                stack.append((pc + 1, events, conds, _forget(known, ins.cond)))
            elif k == "note":
                if pc not in seen_notes:
                    seen_notes.add(pc)
                    notes.append(ins.note)
                stack.append((pc + 1, events, conds, known))
            elif k == "jump":
                stack.append((ins.target, events, conds, known))
            elif k in ("branch", "case"):
                tested, need = polarity(ins.cond)
                was = dict(known).get(tested)
                on_true = (ins.on_true,) if ins.on_true else ()
                on_false = (ins.on_false,) if ins.on_false else ()
                nxt = ins.dest if k == "case" else pc + 1
                for value, dest, extra in ((False, ins.target, on_false), (True, nxt, on_true)):
                    truth = value == need
                    if was is not None and was != truth:
                        continue
                    now = known if was is not None or k == "case" else known + ((tested, truth),)
                    stack.append((dest, events + extra, conds + (Condition(ins.cond, value, ins.line),), now))
            elif k == "call":
                inner, cut = self.paths(ins.callee)
                truncated |= cut
                for p in inner:
                    facts = dict(known)
                    ok = True
                    for c in p.conditions:
                        tested, need = polarity(_renamed(c.text, ins.rename))
                        truth = c.value == need
                        if facts.get(tested, truth) != truth:
                            ok = False
                            break
                        facts[tested] = truth
                    if not ok:
                        continue
                    via = tuple(LockEvent(e.op, e.lock, e.instance, e.api, e.mode, e.file, e.line,
                                          (ins.callee,) + e.via, e.may_fail) for e in p.events)
                    more = tuple(Condition(_renamed(c.text, ins.rename), c.value, c.line) for c in p.conditions)
                    now = tuple(facts.items())
                    for lhs in self.assigned.get(ins.callee, ()):
                        now = _forget(now, _renamed(lhs, ins.rename))
                    stack.append((pc + 1, events + via, conds + more, now))
        paths = sorted(found.values(), key=lambda p: [(e.line, e.op) for e in p.events])
        return paths, truncated


def _forget(known: tuple, lhs: str) -> tuple:
    """What an assignment to `lhs` makes unknown: every condition that names it."""
    pattern = re.compile(rf"(^|[^\w>.-]){re.escape(lhs)}($|[^\w])")
    return tuple((t, v) for t, v in known if not pattern.search(t))

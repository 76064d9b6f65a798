"""An apcheck model skeleton of kernel C files (`apcheck extract --skeleton`).

The lock structure of every function that takes a lock, directly or through a call to a function
of the files, in the modelling language: a `proc` per function (an `op` when no function of the
files calls it), its `acquire`/`release`/trylock/`call` statements in their `if`s, loops and
returns, `goto` unwinding written out (the statements from the label to the end of the function,
then a `return`), and `guard()`/`scoped_guard()` released at each exit of their scope. The data
are holes, marked:

- a condition is a name `hole_LINE` (the C condition in a comment): the skeleton parses, and
  `apcheck check` names every hole left with its position until the modeller writes the condition;
- a statement that takes no lock is a `// C LINE: text` comment where its model goes;
- what the language has no statement for (`break`, `continue`, the failure path of an
  interruptible lock, `lockdep_assert_held`) is a `// hole (C LINE): ...` comment.

Left to the modeller and said in the header: sorts and the state, parameters, one lock instance per
object (`lock kvm->lock[Guest]`, `acquire kvm->lock[mdev_kvm[m]]`), threads and properties.
"""
from __future__ import annotations

import re

from apcheck.csource.extract import (ITERATOR, LOCK_APIS, TYPE_MACROS, Units, cond_text, extract_units,
                                     lock_class, macro_call, read_units)

KINDS = (("spin", "spinlock"), ("raw_spin", "spinlock"), ("mutex", "mutex"), ("down_", "rwsem"), ("up_", "rwsem"))
MAX_TAIL_DEPTH = 8   # gotos written out inside gotos' tails


def skeleton(paths: list[str]) -> str:
    """The skeleton of the files, as the text of a model."""
    units = read_units(paths)
    x = extract_units(units)
    locking = [f.name for f in x.functions if any(p.events for p in f.paths)]
    callers: dict[str, set[str]] = {}
    for name in locking:
        for callee in _callees(units.defs[name][1], units.defs):
            callers.setdefault(callee, set()).add(name)
    writer = _Writer(units, set(locking))
    bodies = [writer.function(name, is_op=not (callers.get(name, set()) - {name})) for name in locking]
    out = [f"// Skeleton of {', '.join(paths)}, written by `apcheck extract --skeleton`.",
           "// Each function that takes a lock (directly or through a call) is a proc, an op when no",
           "// function of the files calls it. Holes: a condition is a name hole_LINE (its C text in a",
           "// comment; `apcheck check` lists the holes left), a statement that takes no lock is a",
           "// `// C LINE:` comment where its model goes, and `// hole (C LINE)` marks what the language",
           "// has no statement for. Left to the modeller: sorts, state variables, parameters (the C",
           "// ones are beside each head), one lock instance per object (lock L[Sort], acquire L[e]),",
           "// threads and properties.", ""]
    for cls in sorted(writer.locks):
        kind, where = writer.locks[cls]
        out.append(f"lock {cls}: {kind}  // {where}")
    for name in locking:
        if name in writer.recursive:
            out.append(f"// hole: {name} calls itself; the language has no recursion")
    out.append("")
    for body in bodies:
        out.extend(body)
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _params_text(fn) -> str:
    """The C function's parameter list, for the modeller to turn into typed parameters."""
    for n in _walk(fn.child_by_field_name("declarator")):
        if n.type == "parameter_list":
            text = _text(n)[1:-1].strip()
            return "" if text == "void" else text
    return ""


def _callees(fn, defs: dict) -> set[str]:
    return {c.child_by_field_name("function").text.decode() for c in _walk(fn)
            if c.type == "call_expression" and c.child_by_field_name("function") is not None
            and c.child_by_field_name("function").text.decode() in defs}


def _walk(node):
    yield node
    for c in node.children:
        yield from _walk(c)


def _line(node) -> int:
    return node.start_point[0] + 1


def _text(node) -> str:
    return re.sub(r"\s+", " ", node.text.decode(errors="replace")).strip()



def _kind(api: str) -> str:
    for prefix, kind in KINDS:
        if api.startswith(prefix):
            return kind
    return "mutex"   # mutex_*, and lockdep_assert_held* until the lock is seen taken


class _Writer:
    """Writes one function at a time; collects the lock classes it meets."""

    def __init__(self, units: Units, locking: set[str]):
        self.units, self.locking = units, locking
        self.locks: dict[str, tuple[str, str]] = {}
        self.recursive: set[str] = set()
        self.asserted_only: set[str] = set()
        self.holes: set[str] = set()                # over every function: a hole's name is unique

    def function(self, name: str, is_op: bool) -> list[str]:
        path, fn = self.units.defs[name]
        self.name, self.fn, self.path = name, fn, path
        self.lines: list[str] = []
        self.guards: list[tuple[str, int]] = []     # (lock, block id)
        self.tails: list[str] = []                  # labels being written out
        body = fn.child_by_field_name("body")
        self.labels = {c.child_by_field_name("label").text.decode(): (body, i)
                       for i, c in enumerate(body.named_children) if c.type == "labeled_statement"}
        params = _params_text(fn)
        head = f"{'op' if is_op else 'proc'} {name}() {{  // {path}:{_line(fn)}" + (f" ({params})" if params else "")
        self.depth = 1
        self.block(body)
        return [head] + self.lines + ["}"]

    # output

    def put(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def hole(self, node) -> str:
        name = f"hole_{_line(node)}"
        k = 2
        while name in self.holes:
            name, k = f"hole_{_line(node)}_{k}", k + 1
        self.holes.add(name)
        return name

    def lock(self, arg, api: str, kind: str | None = None) -> str:
        """The lock class `arg` names, declared at its first use (`api`, and the kind it implies)."""
        cls, inst = lock_class(arg.text.decode())
        kind = kind or _kind(api)
        if cls not in self.locks or (cls in self.asserted_only and not api.startswith("lockdep_assert")):
            where = f"{self.path}:{_line(arg)} {api}(&{inst})"
            if inst != cls:
                where += ", one per object? then lock " + cls + "[Sort]"
            self.locks[cls] = (kind, where)
            if api.startswith("lockdep_assert"):   # its kind is known once a path takes it
                self.asserted_only.add(cls)
            else:
                self.asserted_only.discard(cls)
        return cls

    # statements

    def relevant(self, node) -> bool:
        """Does the statement take a lock, call a function that does, or leave its block?"""
        for n in _walk(node):
            if n.type in ("return_statement", "goto_statement", "break_statement", "continue_statement"):
                return True
            if n.type == "call_expression":
                fn = n.child_by_field_name("function")
                name = fn.text.decode() if fn is not None else ""
                if name in LOCK_APIS or name in self.locking or name in self.units.macros or \
                        name in ("guard", "scoped_guard") or \
                        (fn is not None and fn.type == "call_expression" and _text(fn).startswith("guard")):
                    return True
        return False

    def block(self, node, tail_from: int = 0, base: int | None = None) -> None:
        """A compound statement (from its child tail_from on); the guards above `base` (those it
        declares) are released at its end."""
        depth = len(self.guards) if base is None else base
        children = [c for c in node.named_children if c.type != "comment"][tail_from:]
        i = 0
        while i < len(children):
            c, nxt = children[i], children[i + 1] if i + 1 < len(children) else None
            if self.macro_block(c, nxt):
                i += 2
                continue
            if self.stmt(c) == "left":
                self.guards = self.guards[:depth]
                return
            i += 1
        self.release_guards(depth)

    def release_guards(self, depth: int) -> None:
        for lock, _ in reversed(self.guards[depth:]):
            self.put(f"release {lock}")
        del self.guards[depth:]

    def stmt(self, node) -> str | None:
        """Write the statement; "left" when control never goes past it (return, goto)."""
        t = node.type
        if t == "compound_statement":
            self.block(node)
        elif t == "labeled_statement":
            for c in node.named_children[1:]:
                if self.stmt(c) == "left":
                    return "left"
        elif t == "return_statement":
            self.calls(node)
            for lock, _ in reversed(self.guards):
                self.put(f"release {lock}")
            value = _text(node)[len("return"):].rstrip(";").strip()
            if re.fullmatch(r"-E[A-Z0-9]+|0", value):
                self.put(f"return {value}")
            else:
                self.put("return" + (f"  // C {_line(node)}: return {value}" if value else ""))
            return "left"
        elif t == "goto_statement":
            return self.goto(node)
        elif t in ("break_statement", "continue_statement"):
            self.put(f"// hole (C {_line(node)}): {_text(node)} (the language has none)")
        elif t == "if_statement":
            self.if_stmt(node)
        elif t in ("for_statement", "while_statement", "do_statement"):
            self.loop(node)
        elif t == "switch_statement":
            self.switch(node)
        elif t == "function_definition":   # `name(args) { ... }` read as a nested definition
            self.iterate(node, node.children[0].text.decode() if node.children else "?",
                         node.child_by_field_name("body"))
        elif t in ("expression_statement", "declaration"):
            if self.relevant(node):
                self.calls(node)
            elif t == "expression_statement" or any(c.type == "init_declarator" for c in node.named_children):
                self.data(node)
        elif t not in ("comment", ";"):
            self.data(node)
        return None

    def data(self, node) -> None:
        text = _text(node)
        if text and text != ";":
            self.put(f"// C {_line(node)}: {text[:100]}")

    def calls(self, node) -> None:
        """The lock operations and calls of locking functions in an expression, in C's order
        (arguments first)."""
        if node.type == "call_expression":
            fn = node.child_by_field_name("function")
            name = fn.text.decode() if fn is not None else ""
            al = node.child_by_field_name("arguments")
            args = [c for c in (al.named_children if al is not None else []) if c.type != "comment"]
            if name not in TYPE_MACROS:
                for a in args:
                    self.calls(a)
            if fn is not None and fn.type == "call_expression" and \
                    (fn.child_by_field_name("function") or fn).text.decode() == "guard":
                kind_args = [c for c in fn.child_by_field_name("arguments").named_children if c.type != "comment"]
                if kind_args and args:
                    self.take_guard(node, "guard", kind_args[0].text.decode(), args[0], self.scope_of(node))
                return
            if name in LOCK_APIS and args:
                self.lock_op(node, name, args[0])
            elif name in self.units.macros:
                file, line = self.units.macros[name]
                self.put(f"// hole (C {_line(node)}): the macro {name}() (defined at {file}:{line}) takes a lock, "
                         "and macros are not expanded")
            elif name in self.locking:
                if name == self.name:
                    self.recursive.add(name)
                    self.put(f"// hole (C {_line(node)}): a call of {name} itself")
                else:
                    self.put(f"call {name}()")
            return
        for c in node.named_children:
            self.calls(c)

    def take_guard(self, node, macro: str, kind: str, arg, scope: int) -> None:
        """guard(kind)(&lock) or scoped_guard(kind, &lock): the lock is held until its scope ends
        (cleanup.h's kinds: mutex, spinlock*, raw_spinlock*, rwsem_read, rwsem_write, ...)."""
        lock = self.lock(arg, f"{macro}({kind})", "rwsem" if kind.startswith("rwsem")
                         else "spinlock" if "spinlock" in kind else "mutex")
        self.put(f"acquire {'read ' if kind == 'rwsem_read' else ''}{lock}  // C {_line(node)}: {macro}({kind})")
        self.guards.append((lock, scope))

    def scope_of(self, node) -> int:
        n = node.parent
        while n is not None and n.type != "compound_statement":
            n = n.parent
        return n.id if n is not None else 0

    def lock_op(self, node, api: str, arg) -> None:
        op, mode = LOCK_APIS[api]
        lock = self.lock(arg, api)
        if op == "acquire":
            self.put(f"acquire {'read ' if mode == 'read' and _kind(api) == 'rwsem' else ''}{lock}")
        elif op == "release":
            self.put(f"release {lock}")
        elif op == "acquire-may-fail":
            self.put(f"acquire {lock}  // hole (C {_line(node)}): {api} may fail; its result is not tested")
        elif op == "trylock":
            self.put(f"if trylock {lock} {{  // hole (C {_line(node)}): {api} outside a condition")
            self.put("}")
        else:
            self.put(f"// hole (C {_line(node)}): {api}({_text(arg)})")

    def if_stmt(self, node) -> None:
        cond = node.child_by_field_name("condition")
        then, alt = node.child_by_field_name("consequence"), node.child_by_field_name("alternative")
        alt_body = [c for c in alt.named_children if c.type != "comment"] if alt is not None else []
        if not self.relevant(node):
            self.data(node)
            return
        tried = self.tried_lock(cond)
        if tried is not None:
            call, api, negated = tried
            op, mode = LOCK_APIS[api]
            args = [c for c in call.child_by_field_name("arguments").named_children if c.type != "comment"]
            lock = self.lock(args[0], api)
            if op == "trylock":   # the branch taken when it succeeded holds the lock
                self.put(f"if {'!' if negated else ''}trylock {lock} {{  // C {_line(node)}: {cond_text(cond)}")
                self.branch(then)
                self.orelse(alt_body)
                return
            # an interruptible lock: the branch where it failed is left out
            succeeded_if_true = negated
            self.put(f"acquire {'read ' if mode == 'read' else ''}{lock}  // C {_line(node)}: {cond_text(cond)}; "
                     "the path where it fails is not in the skeleton (hole)")
            if succeeded_if_true:
                self.stmt(then)
            else:
                for c in alt_body:
                    self.stmt(c)
            return
        self.calls(cond)
        self.put(f"if {self.hole(node)} {{  // C {_line(node)}: {cond_text(cond)}")
        self.branch(then)
        self.orelse(alt_body)

    def orelse(self, body: list) -> None:
        """The `else` of an `if` being written (its statements), and the closing brace."""
        if body:
            self.put("} else {")
            self.depth += 1
            for c in body:
                self.stmt(c)
            self.depth -= 1
        self.put("}")

    def branch(self, node) -> None:
        self.depth += 1
        self.stmt(node)
        self.depth -= 1

    def tried_lock(self, cond):
        """A trylock or an interruptible lock tested by the condition: (call, api, negated)."""
        if cond is None:
            return None
        node, negated = cond, False
        while True:
            if node.type == "parenthesized_expression" and node.named_children:
                node = node.named_children[0]
            elif node.type == "unary_expression" and node.children and node.children[0].type == "!":
                node, negated = node.named_children[0], not negated
            else:
                break
        if node.type == "call_expression":
            fn = node.child_by_field_name("function")
            api = fn.text.decode() if fn is not None else ""
            if api in LOCK_APIS and LOCK_APIS[api][0] in ("trylock", "acquire-may-fail"):
                return node, api, negated
        return None

    def loop(self, node) -> None:
        if not self.relevant(node):
            self.data(node.child_by_field_name("condition") or node)
            return
        cond = node.child_by_field_name("condition")
        if cond is not None:
            self.calls(cond)
        text = cond_text(cond) if cond is not None else "do ... while"
        self.put(f"while {self.hole(node)} {{  // C {_line(node)}: {node.type.split('_')[0]} ({text})")
        self.branch(node.child_by_field_name("body"))
        self.put("}")

    def iterate(self, node, name: str, body) -> None:
        if not self.relevant(body):
            self.data(node)
            return
        if not ITERATOR.search(name):
            self.put(f"// hole (C {_line(node)}): a block after the macro {name}(), which is not a known iterator")
            self.stmt(body)
            return
        self.put(f"for x in {self.hole(node)} {{  // C {_line(node)}: {_text(node).split('{')[0].strip()}")
        self.branch(body)
        self.put("}")

    def macro_block(self, node, nxt) -> bool:
        """`name(args) { ... }`: scoped_guard or an iterator macro."""
        found = macro_call(node, nxt)
        if found is None:
            return False
        _, name, args = found
        if name == "scoped_guard" and len(args) >= 2:
            self.take_guard(node, "scoped_guard", args[0].text.decode(), args[1], nxt.id)
            self.block(nxt)   # releases it at the end; a return inside releases it there
            return True
        self.iterate(node, name, nxt)
        return True

    def switch(self, node) -> None:
        if not self.relevant(node):
            self.data(node.child_by_field_name("condition") or node)
            return
        self.calls(node.child_by_field_name("condition"))
        cases = [c for c in node.child_by_field_name("body").named_children if c.type == "case_statement"]
        for k, case in enumerate(cases):
            value = case.child_by_field_name("value")
            label = _text(value) if value is not None else "default"
            self.put(f"{'} else ' if k else ''}if {self.hole(case)} {{  // C {_line(case)}: case {label}")
            self.depth += 1
            body = [s for s in case.named_children if (value is None or s.id != value.id) and s.type != "comment"]
            if body and body[-1].type == "break_statement":
                body = body[:-1]
            elif k + 1 < len(cases):
                self.put(f"// hole (C {_line(case)}): falls through to the next case")
            for s in body:
                if self.stmt(s) == "left":
                    break
            self.depth -= 1
        if cases:
            self.put("}")

    def goto(self, node) -> str:
        label = node.child_by_field_name("label").text.decode()
        if label not in self.labels or label in self.tails or len(self.tails) >= MAX_TAIL_DEPTH:
            why = ("a label inside a block" if label not in self.labels else "a jump back")
            self.put(f"// hole (C {_line(node)}): goto {label} ({why}): not in the skeleton")
            self.put("return")
            return "left"
        body, index = self.labels[label]
        # a goto leaves every scope but the function's: guards declared inside are released
        outer = [g for g in self.guards if g[1] == body.id]
        for lock, _ in reversed([g for g in self.guards if g[1] != body.id]):
            self.put(f"release {lock}")
        saved, self.guards = self.guards, outer
        self.put(f"// C {_line(node)}: goto {label}")
        self.tails.append(label)
        before = len(self.lines)
        self.block(body, tail_from=self._index_in(body, index), base=0)
        self.tails.pop()
        if not any(line.strip().startswith("return") for line in self.lines[before:][-1:]):
            self.put("return")
        self.guards = saved
        return "left"

    def _index_in(self, body, index: int) -> int:
        """The label's position among the body's statements that are not comments."""
        kids = body.named_children
        return sum(1 for c in kids[:index] if c.type != "comment")

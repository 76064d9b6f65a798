"""Name resolution and type checking: AST modules -> checked `Program`.

Reports every error it can find in one run (as a DiagnosticError).
"""
from __future__ import annotations

from apcheck.diagnostics import Diagnostic, DiagnosticError, Sources, Span
from apcheck.ir import program as P
from apcheck.ir.types import (BOOL, ERR, ERRNOS, INT, NULL, ElemT, EnumT, MapT, SetT,
                              TupleT, Type, assignable, comparable)
from apcheck.lang import ast as A
from apcheck.lang.printer import type_text
from apcheck.results import VACUOUS, Verdict

LOCK_KINDS = ("mutex", "rwsem", "spinlock")
VERDICTS = tuple(Verdict) + (VACUOUS,)   # what an expectation may say
DEFAULT_BOUND = 2
BUILTIN_PROPERTIES = ("deadlock", "defects")


class _Poison(Exception):
    """An expression already reported; stop checking it."""


def check(modules: list[A.Module], path: str | None = None) -> P.Program:
    """Check the merged items of `modules` (imports first); the last module names the program."""
    return _Checker(modules, path or modules[-1].path).run()


class _Checker:
    def __init__(self, modules: list[A.Module], path: str):
        self.modules = modules
        self.sources = Sources({m.path: m.text for m in modules})
        self.path = path
        self.errors: list[Diagnostic] = []
        self.sorts: dict[str, P.Sort] = {}
        self.enums: dict[str, tuple[str, ...]] = {}
        self.members: dict[str, tuple[EnumT, int]] = {}
        self.vars: dict[str, P.Var] = {}
        self.locks: dict[str, P.LockClass] = {}
        self.proc_decls: dict[str, tuple[A.ProcDecl, str]] = {}   # the definition, else the declaration
        self.procs: dict[str, P.Proc] = {}
        self.undefined: dict[str, Span] = {}    # declared without a body and defined nowhere
        self.akas: dict[str, dict[str, None]] = {}  # procedure -> the kernel's names for it (ordered)
        self.names: dict[str, tuple[str, Span]] = {}
        self.scopes: list[dict[str, P.Local]] = []
        # (procedure, loop variable) -> each such for loop with the locals in scope at its head
        self.loop_sites: dict[tuple[str, str], list[tuple[P.SFor, dict[str, P.Local]]]] = {}

    # ---- driver -----------------------------------------------------------

    def err(self, code: str, msg: str, span: Span, notes=()) -> None:
        self.errors.append(Diagnostic(code, msg, span, notes=tuple(notes)))

    def items(self) -> list[tuple[str, A.Decl]]:
        """Every item of every module with its file; a `for` block's items only if it names this model."""
        name = P.model_name_of(self.path)
        out = []
        for m in self.modules:
            for it in m.items:
                if isinstance(it, A.ForModelsDecl):
                    out += [(m.path, x) for x in it.items if name in it.models]
                else:
                    out.append((m.path, it))
        return out

    def run(self) -> P.Program:
        items = self.items()
        for _, it in items:
            self.declare_early(it)
        for path, it in items:
            if isinstance(it, A.ProcDecl):
                self.add_proc(it, path)
        for _, it in items:
            if isinstance(it, A.VarDecl):
                self.declare_var(it)
        for name, (decl, path) in self.proc_decls.items():
            if decl.body is None:
                self.undefined[name] = decl.span
            else:
                self.procs[name] = self.check_proc(decl, path)
        self.check_recursion()
        threads = [t for _, it in items if isinstance(it, A.ThreadDecl) for t in [self.check_thread(it)] if t]
        scenarios = self.check_scenarios([it for _, it in items if isinstance(it, A.ScenarioDecl)], threads)
        span = threads[0].span if threads else P.Span(self.path, 0, 0, 0, 0)
        system = P.Scenario(P.WHOLE_SYSTEM, threads, span)
        props = [p for _, it in items for p in [self.check_property(it)] if p]
        loop_invs = [li for _, it in items if isinstance(it, A.LoopInvariantDecl)
                     for li in [self.check_loop_invariant(it)] if li]
        seen: dict[str, Span] = {}
        for p in props + loop_invs:
            if p.name in seen or p.name in BUILTIN_PROPERTIES:
                self.err("E202", f"property '{p.name}' is declared twice" if p.name in seen
                         else f"'{p.name}' is a built-in property name", p.span)
            seen[p.name] = p.span
        expects = self.check_expects([it for _, it in items if isinstance(it, A.ExpectDecl)])
        if self.errors:
            raise DiagnosticError(sorted(self.errors, key=lambda d: (d.span.file, d.span.line, d.span.col)),
                                  self.sources)
        return P.Program(self.path, self.sorts, self.enums, list(self.vars.values()), self.locks,
                         self.procs, threads, props, expects, scenarios, system, self.sources, self.undefined,
                         loop_invs)

    def add_proc(self, it: A.ProcDecl, path: str) -> None:
        """A procedure's declaration (no body) and its definition may both appear, in either order,
        with the same parameter types; two definitions are a duplicate."""
        self.akas.setdefault(it.name, {}).update(dict.fromkeys(it.aka))  # a declaration's and its definition's
        prev = self.proc_decls.get(it.name)
        if prev is None or (prev[0].body is not None and it.body is not None):
            if self.declare(it.name, "procedure" if not it.is_op else "operation", it.span):
                self.proc_decls[it.name] = (it, path)
            return
        first = prev[0]
        if not self.same_signature(first, it):
            this, other = ("definition", "declaration") if it.body is not None else ("declaration", "definition")
            self.err("E205", f"this {this} of '{it.name}' does not match its {other}: "
                     f"{_signature(it)} vs {_signature(first)}", it.span, [(f"the {other} is here", first.span)])
        if it.body is not None:  # the definition: what a later duplicate is compared with
            self.proc_decls[it.name] = (it, path)
            self.names[it.name] = (self.names[it.name][0], it.span)

    @staticmethod
    def same_signature(a: A.ProcDecl, b: A.ProcDecl) -> bool:
        return a.is_op == b.is_op and [p.type for p in a.params] == [q.type for q in b.params]

    def declare(self, name: str, what: str, span: Span) -> bool:
        if name in self.names:
            prev_what, prev = self.names[name]
            self.err("E202", f"'{name}' is already declared as a {prev_what}", span,
                     [("first declared here", prev)])
            return False
        self.names[name] = (what, span)
        return True

    def declare_early(self, it: A.Decl) -> None:
        if isinstance(it, A.SortDecl):
            if self.declare(it.name, "sort", it.span):
                bound = DEFAULT_BOUND if it.bound is None else it.bound
                if bound < 1:
                    self.err("E305", f"sort '{it.name}' needs a bound of at least 1", it.span)
                self.sorts[it.name] = P.Sort(it.name, max(bound, 1), it.span)
        elif isinstance(it, A.EnumDecl):
            if self.declare(it.name, "enum", it.span):
                self.enums[it.name] = it.members
                t = EnumT(it.name, it.members)
                for i, m in enumerate(it.members):
                    if self.declare(m, f"member of enum {it.name}", it.span):
                        self.members[m] = (t, i)
        elif isinstance(it, A.LockDecl):
            if it.name in self.locks:
                self.err("E202", f"lock '{it.name}' is declared twice", it.span,
                         [("first declared here", self.locks[it.name].span)])
                return
            if it.kind not in LOCK_KINDS:
                self.err("E401", f"unknown lock kind '{it.kind}'; expected mutex, rwsem or spinlock", it.span)
            if it.per is not None and it.per not in self.sorts and it.per not in [
                    i.name for m in self.modules for i in m.items if isinstance(i, A.SortDecl)]:
                self.err("E201", f"undeclared sort '{it.per}' for per-instance lock '{it.name}'", it.span)
            self.locks[it.name] = P.LockClass(it.name, it.kind, it.per, it.span)

    def guard_positions(self, it: A.VarDecl, var: P.Var) -> list[int | None]:
        """`guarded_by lock[Sort]`: the lock must have one instance per Sort, and Sort must be a key of
        the variable; the first key of that sort names the instance that guards an entry."""
        out = []
        pers = dict(zip(it.guard, it.guard_per or (None,) * len(it.guard)))
        for cls in var.guard:
            sort = pers.get(cls.name)
            if sort is None:
                out.append(None)
                continue
            if cls.per != sort:
                self.err("E301", f"'{cls.name}[{sort}]': {cls.name} has " +
                         (f"one instance per {cls.per}" if cls.per else "a single instance"), it.span)
            elif sort not in var.key_sorts():
                self.err("E301", f"'{cls.name}[{sort}]' guards '{var.name}' per {sort}, but {var.name} "
                         f"has no {sort} key (its type is {var.type})", it.span)
            out.append(var.key_sorts().index(sort) if sort in var.key_sorts() else None)
        return out

    def lock_classes(self, names, where: str, span: Span) -> list[P.LockClass]:
        """The declared lock classes among `names`; E201 for each undeclared one."""
        out = []
        for name in names:
            if name in self.locks:
                out.append(self.locks[name])
            else:
                self.err("E201", f"undeclared lock '{name}' in {where}", span)
        return out

    def declare_var(self, it: A.VarDecl) -> None:
        if not self.declare(it.name, "state variable", it.span):
            return
        typ = self.resolve_type(it.type)
        guard = self.lock_classes(it.guard, "guarded_by", it.span)
        var = P.Var(it.name, typ or BOOL, None, guard, it.span, len(self.vars))
        var.guard_at = self.guard_positions(it, var)
        self.vars[it.name] = var
        if it.init is not None and typ is not None:
            init = self.expr_or_none(it.init)
            if init is not None:
                target = typ.value if isinstance(typ, MapT) else typ
                if not assignable(target, init.type):
                    self.err("E301", f"initial value of '{it.name}' has type {init.type}, expected {target}",
                             it.init.span)
                var.init = init
        elif isinstance(typ, ElemT) and not typ.optional:
            self.err("E301", f"variable '{it.name}' of sort type {typ} needs an initial value "
                     f"(or make it optional: {typ}?)", it.span)

    # ---- types ------------------------------------------------------------

    def sort_name(self, name: str, span: Span) -> str | None:
        if name in self.sorts:
            return name
        what = self.names.get(name, (None,))[0]
        self.err("E201" if what is None else "E203",
                 f"undeclared sort '{name}'" if what is None else f"'{name}' is a {what}, not a sort", span)
        return None

    def resolve_type(self, t: A.TypeExpr) -> Type | None:
        if isinstance(t, A.BoolType):
            return BOOL
        if isinstance(t, A.NamedType):
            if t.name in self.enums and not t.optional:
                return EnumT(t.name, self.enums[t.name])
            if t.name == "int":
                return INT
            if t.name == "errno":
                return ERR
            s = self.sort_name(t.name, t.span)
            return ElemT(s, t.optional) if s else None
        if isinstance(t, A.SetType):
            sorts = [self.sort_name(s, t.span) for s in t.sorts]
            return SetT(tuple(sorts)) if all(sorts) else None
        if isinstance(t, A.MapType):
            keys = [self.sort_name(s, t.span) for s in t.keys]
            val = self.resolve_type(t.value)
            if isinstance(val, MapT):
                self.err("E301", "a map's values cannot be maps; add the keys to the outer map", t.span)
                return None
            return MapT(tuple(keys), val) if all(keys) and val else None
        raise AssertionError(t)  # pragma: no cover

    # ---- procedures and statements ------------------------------------------

    def check_proc(self, decl: A.ProcDecl, path: str) -> P.Proc:
        self.scopes = [{}]
        params = []
        for prm in decl.params:
            typ = self.resolve_type(prm.type) or BOOL
            local = P.Local(prm.name, typ, prm.span, "param")
            self.bind(local)
            params.append(local)
        self.current_proc = decl
        body = self.block(decl.body)
        self.scopes = []
        return P.Proc(decl.name, params, body, decl.is_op, decl.span, path, (decl.params, decl.body),
                      tuple(self.akas.get(decl.name, ())))

    def bind(self, local: P.Local) -> None:
        scope = self.scopes[-1]
        if local.name in scope:
            self.err("E202", f"'{local.name}' is already declared in this scope", local.span)
        scope[local.name] = local

    def block(self, stmts: tuple[A.Stmt, ...]) -> list[P.Stmt]:
        self.scopes.append({})
        out = []
        returned = None
        for s in stmts:
            if returned is not None:
                self.err("E404", "statement after return is never executed", s.span,
                         [("the return", returned)])
                returned = None
            r = self.stmt(s)
            if r is not None:
                out.append(r)
            if isinstance(s, A.Return):
                returned = s.span
        self.scopes.pop()
        return out

    def stmt(self, s: A.Stmt) -> P.Stmt | None:
        try:
            return self._stmt(s)
        except _Poison:
            return None

    @staticmethod
    def header(check):
        """A statement's header checked; None if it was wrong (already reported)."""
        try:
            return check()
        except _Poison:
            return None

    def _stmt(self, s: A.Stmt) -> P.Stmt | None:
        if isinstance(s, A.Acquire):
            target = self.lock_target(s.lock)
            mode = s.mode
            if mode in ("read", "write") and target.lock.kind != "rwsem":
                self.err("E401", f"'{mode}' acquire of {target.lock.kind} '{target.lock.name}'; "
                         "only an rwsem has read and write modes", s.span)
            return P.SAcquire(s.span, target, "read" if mode == "read" else "exclusive")
        if isinstance(s, A.Release):
            return P.SRelease(s.span, self.lock_target(s.lock))
        # a header already reported still has its blocks checked (every error in one run)
        if isinstance(s, A.IfTrylock):
            target = self.header(lambda: self.lock_target(s.lock))
            then, orelse = self.block(s.then), self.block(s.orelse or ())
            if target is None:
                raise _Poison
            if s.negated:
                then, orelse = orelse, then
            return P.STrylock(s.span, target, then, orelse)
        if isinstance(s, A.If):
            cond = self.header(lambda: self.bool_expr(s.cond))
            then, orelse = self.block(s.then), self.block(s.orelse or ())
            if cond is None:
                raise _Poison
            return P.SIf(s.span, cond, then, orelse)
        if isinstance(s, A.While):
            cond = self.header(lambda: self.bool_expr(s.cond))
            body = self.block(s.body)
            if cond is None:
                raise _Poison
            return P.SWhile(s.span, cond, body)
        if isinstance(s, A.For):
            dom = self.expr(s.domain)
            if not (isinstance(dom.type, SetT) and dom.type.sorts and len(dom.type.sorts) == 1):
                self.err("E301", f"a for loop runs over a set of one sort, not {dom.type}", s.domain.span)
                raise _Poison
            var = P.Local(s.var, ElemT(dom.type.sorts[0]), s.span, "loop")
            rem = P.Local(f"{s.var}$rest", dom.type, s.span, "hidden")
            visible = {name: lc for scope in self.scopes for name, lc in scope.items()}
            self.scopes.append({})
            self.bind(var)
            body = self.block(s.body)
            self.scopes.pop()
            loop = P.SFor(s.span, var, rem, dom, body)
            self.loop_sites.setdefault((self.current_proc.name, s.var), []).append((loop, visible))
            return loop
        if isinstance(s, A.Wait):
            cond = self.bool_expr(s.cond)
            if s.releasing is None:
                return P.SWait(s.span, cond)
            target = self.lock_target(s.releasing)
            # wait until c releasing L  ==  while !c { release L; wait until c; acquire L }
            neg = P.Op(BOOL, s.span, "!", [cond])
            return P.SWhile(s.span, neg, [P.SRelease(s.span, target), P.SWait(s.span, cond),
                                          P.SAcquire(s.span, target, "exclusive")])
        if isinstance(s, A.Yield):
            return P.SYield(s.span)
        if isinstance(s, A.Return):
            val = None
            if s.value is not None:
                val = self.expr(s.value)
                if not assignable(ERR, val.type):
                    self.err("E301", f"return value must be an error code such as -EBUSY or 0, not {val.type}",
                             s.value.span)
            return P.SReturn(s.span, val)
        if isinstance(s, A.CallStmt):
            args = self.call_args(s.call)
            return P.SCall(s.span, s.call.proc, args, None)
        if isinstance(s, A.Let):
            if isinstance(s.value, A.Call):
                args = self.call_args(s.value)
                local = P.Local(s.name, ERR, s.span, "let")
                self.bind(local)
                return P.SCall(s.span, s.value.proc, args, local)
            val = self.expr(s.value)
            typ = self.resolve_type(s.type) if s.type else val.type
            if typ is None:
                raise _Poison
            if isinstance(typ, SetT) and typ.sorts is None:
                self.err("E301", f"the type of '{s.name}' cannot be inferred from {{}}; write let {s.name}: set<S> = {{}}",
                         s.span)
                raise _Poison
            if not assignable(typ, val.type):
                self.err("E301", f"'{s.name}' is declared {typ} but its value has type {val.type}", s.value.span)
            local = P.Local(s.name, typ, s.span, "let")
            self.bind(local)
            return P.SAssign(s.span, local, [], ":=", val)
        if isinstance(s, A.Assign):
            return self.assign(s)
        if isinstance(s, A.Assert):
            return P.SAssert(s.span, self.bool_expr(s.cond))
        raise AssertionError(s)  # pragma: no cover

    def assign(self, s: A.Assign) -> P.Stmt:
        target = self.lookup_local(s.target) or self.vars.get(s.target)
        if target is None:
            what = self.names.get(s.target, (None,))[0]
            if what is None:
                self.err("E201", f"undeclared variable '{s.target}'", s.span)
            else:
                self.err("E303", f"cannot assign to '{s.target}': it is a {what}", s.span)
            raise _Poison
        if isinstance(target, P.Local) and target.kind in ("param", "loop"):
            self.err("E303", f"cannot assign to {target.kind} '{s.target}'; copy it into a let", s.span)
            raise _Poison
        slot_type = target.type
        if isinstance(target, P.Local) and s.indices:
            self.err("E303", f"cannot assign to part of local '{s.target}'; assign the whole value", s.span)
            raise _Poison
        indices = [self.expr(i) for i in s.indices]
        if indices:
            slot_type = self.index_type(slot_type, indices, s.span, assigning=True)
        if isinstance(s.value, A.Call):
            args = self.call_args(s.value)
            if indices or not assignable(slot_type, ERR) or s.op != ":=":
                self.err("E301", "a call's result is an error code; assign it to an error-code variable with :=",
                         s.span)
            if isinstance(target, P.Local):
                return P.SCall(s.span, s.value.proc, args, target)
            self.err("E303", "assign a call's result to a local (let) first", s.span)
            raise _Poison
        val = self.expr(s.value)
        if s.op in ("+=", "-="):
            if not isinstance(slot_type, SetT):
                self.err("E301", f"'{s.op}' needs a set, but the target has type {slot_type}", s.span)
                raise _Poison
        if not assignable(slot_type, val.type):
            self.err("E301", f"cannot assign {val.type} to a target of type {slot_type}", s.value.span)
        return P.SAssign(s.span, target, indices, s.op, val)

    def call_args(self, call: A.Call) -> list[P.Expr]:
        args = [self.expr(a) for a in call.args]
        entry = self.proc_decls.get(call.proc)
        if entry is None:
            what = self.names.get(call.proc, (None,))[0]
            self.err("E201" if what is None else "E203",
                     f"undeclared procedure '{call.proc}'" if what is None
                     else f"'{call.proc}' is a {what}, not a procedure", call.span)
            raise _Poison
        decl = entry[0]
        if decl.is_op:
            self.err("E203", f"'{call.proc}' is an operation (an entry point); only procedures can be called",
                     call.span)
        if len(args) != len(decl.params):
            self.err("E302", f"'{call.proc}' takes {len(decl.params)} argument(s), {len(args)} given", call.span)
            raise _Poison
        for a, prm in zip(args, decl.params):
            want = self.resolve_type(prm.type)
            if want is not None and not assignable(want, a.type) and not self._elem_coerce(want, a.type):
                self.err("E301", f"argument '{prm.name}' of '{call.proc}' expects {want}, got {a.type}", a.span)
        return args

    @staticmethod
    def _elem_coerce(want: Type, got: Type) -> bool:
        """An optional element passed where an element is expected: checked when it runs (null is a defect)."""
        return isinstance(want, ElemT) and isinstance(got, ElemT) and want.sort == got.sort

    def lock_target(self, ref: A.LockRef) -> P.LockTarget:
        lock = self.locks.get(ref.name)
        if lock is None:
            self.err("E201", f"undeclared lock '{ref.name}'", ref.span)
            raise _Poison
        index = None
        if lock.per is None and ref.index is not None:
            self.err("E302", f"lock '{ref.name}' has a single instance; drop the [index]", ref.span)
        elif lock.per is not None:
            if ref.index is None:
                self.err("E302", f"lock '{ref.name}' has one instance per {lock.per}; write {ref.name}[x]", ref.span)
                raise _Poison
            index = self.expr(ref.index)
            if not (isinstance(index.type, ElemT) and index.type.sort == lock.per):
                self.err("E301", f"instance of '{ref.name}' must be a {lock.per}, not {index.type}", ref.index.span)
        return P.LockTarget(lock, index, ref.span)

    def check_recursion(self) -> None:
        graph = {n: {c.proc for c in _calls(p.body)} for n, p in self.procs.items()}
        state: dict[str, int] = {}

        def dfs(n: str, path: list[str]) -> None:
            state[n] = 1
            for m in sorted(graph.get(n, ())):
                if state.get(m) == 1:
                    cyc = " -> ".join(path[path.index(m):] + [m]) if m in path else m
                    self.err("E403", f"recursive call chain {cyc}; procedures are inlined and cannot recurse",
                             self.procs[n].span)
                elif m in graph and state.get(m) is None:
                    dfs(m, path + [m])
            state[n] = 2

        for n in sorted(graph):
            if state.get(n) is None:
                dfs(n, [n])

    # ---- threads, properties, expectations ------------------------------------

    def check_scenarios(self, decls: list[A.ScenarioDecl], system: list[P.Thread]) -> list[P.Scenario]:
        """Scenario blocks: each a part of the whole system (the top-level threads), so that what a
        scenario shows the system can do: its threads are the system's, each with at most the
        system's instances and operations."""
        out = []
        seen: dict[str, Span] = {}  # scenario names have their own namespace (`scenario vfio` beside `enum ... vfio`)
        by_name = {t.name: t for t in system}
        for d in decls:
            if d.name in seen:
                self.err("E202", f"scenario '{d.name}' is declared twice", d.span, [("first declared here", seen[d.name])])
                continue
            seen[d.name] = d.span
            local: list[P.Thread] = []
            names: set[str] = set()
            for it in d.threads:
                if it.name in names:
                    self.err("E202", f"thread '{it.name}' is declared twice in scenario '{d.name}'", it.span)
                    continue
                names.add(it.name)
                t = self.scenario_thread(d.name, it, by_name.get(it.name))
                if t:
                    local.append(t)
            out.append(P.Scenario(d.name, local, d.span))
        return out

    def scenario_thread(self, scenario: str, it: A.ThreadDecl, whole: P.Thread | None) -> P.Thread | None:
        """A scenario's thread: a thread of the whole system, restricted (E306 where it is not one)."""
        if whole is None:
            self.err("E306", f"scenario '{scenario}' has thread '{it.name}', which the whole system does not "
                     "have: declare it at top level (a scenario explores a part of the system)", it.span)
            return None
        count = it.count or whole.count
        if count > whole.count:
            self.err("E306", f"thread '{it.name}' of scenario '{scenario}' has {count} instances, the whole "
                     f"system's {whole.count}", it.span)
        ops = list(it.ops) or list(whole.ops)
        for op in ops:
            if op not in whole.ops:
                self.err("E306", f"thread '{it.name}' of scenario '{scenario}' runs '{op}', which the whole "
                         f"system's thread '{it.name}' does not run", it.span)
        return P.Thread(it.name, min(count, whole.count), [o for o in ops if o in whole.ops], it.span,
                        whole.serial)

    def check_thread(self, it: A.ThreadDecl, declare: bool = True) -> P.Thread | None:
        if declare and not self.declare(it.name, "thread", it.span):
            return None
        if it.count < 1:
            self.err("E305", f"thread '{it.name}' needs at least one instance", it.span)
        elif it.serial and it.count > 1:
            self.err("E305", f"thread '{it.name}' is serial: the kernel runs one instance of it at a time, "
                     f"so it has one instance, not {it.count}", it.span)
        for op in it.ops:
            decl = self.proc_decls.get(op)
            if decl is None:
                self.err("E201", f"undeclared operation '{op}' in thread '{it.name}'", it.span)
            elif not decl[0].is_op:
                self.err("E203", f"'{op}' is a procedure; a thread runs operations (declare it with 'op')",
                         it.span)
        return P.Thread(it.name, max(it.count, 1), list(it.ops), it.span, it.serial)

    def check_property(self, it: A.Decl) -> P.Property | None:
        if isinstance(it, (A.InvariantDecl, A.CoverDecl)):
            expr = self.scoped_bool_expr(it.expr, [{}])
            if expr is None:
                return None
            kind = "invariant" if isinstance(it, A.InvariantDecl) else "cover"
            unlocked = []
            for name in getattr(it, "unlocked", ()):
                var = self.vars.get(name)
                if var is None:
                    self.err("E201", f"undeclared state variable '{name}' in unlocked(...)", it.span)
                elif not var.guard:
                    self.err("E301", f"'{name}' in unlocked(...) has no guarded_by lock", it.span)
                else:
                    unlocked.append(var)
            needs: dict[str, int] = {}
            for sort, n in (it.needs.bounds if it.needs else ()):
                if sort not in self.sorts:
                    self.err("E201", f"undeclared sort '{sort}' in needs", it.needs.span)
                elif n < 1:
                    self.err("E305", f"'needs {sort}={n}': a bound is at least 1", it.needs.span)
                else:
                    needs[sort] = n
            return P.Property(it.name, kind, it.span, expr=expr, unlocked=unlocked,
                              auxiliary=getattr(it, "auxiliary", False), needs=needs,
                              between=getattr(it, "between", False))
        if isinstance(it, A.LockOrderDecl):
            hier = None
            if it.hierarchy is not None:
                hier = self.lock_classes(it.hierarchy, f"lock order '{it.name}'", it.span)
                if len({h.name for h in hier}) != len(hier):
                    self.err("E202", f"a lock appears twice in hierarchy '{it.name}'", it.span)
            return P.Property(it.name, "lockorder", it.span, hierarchy=hier)
        return None

    def check_loop_invariant(self, it: A.LoopInvariantDecl) -> P.LoopInvariant | None:
        """The loop is named by its procedure and loop variable; its expression reads the locals in
        scope at the loop's head and `done`, the set of the elements the loop has taken."""
        if it.proc not in self.proc_decls:
            self.err("E201", f"undeclared procedure '{it.proc}' in loop invariant '{it.name}'", it.span)
            return None
        sites = self.loop_sites.get((it.proc, it.var), [])
        if len(sites) != 1:
            what = "no" if not sites else f"{len(sites)}"
            self.err("E201" if not sites else "E202", f"'{it.proc}' has {what} loops 'for {it.var} in ...'; "
                     "a loop invariant names exactly one", it.span,
                     [(f"loop {i + 1}", loop.span) for i, (loop, _) in enumerate(sites)])
            return None
        loop, visible = sites[0]
        if "done" in visible:
            self.err("E202", f"'{it.proc}' declares a local 'done', which loop invariant '{it.name}' "
                     "would use for the elements the loop has taken", it.span, [("the local", visible["done"].span)])
            return None
        done = P.Local("done", loop.remaining.type, it.span, "hidden")
        expr = self.scoped_bool_expr(it.expr, [dict(visible), {"done": done}])
        return P.LoopInvariant(it.name, it.proc, loop, done, expr, it.span) if expr is not None else None

    def scoped_bool_expr(self, e: A.Expr, scopes: list[dict[str, P.Local]]) -> P.Expr | None:
        """A property's boolean expression checked with these locals in scope; None if it was
        wrong (already reported)."""
        self.scopes = scopes
        try:
            return self.bool_expr(e)
        except _Poison:
            return None
        finally:
            self.scopes = []

    def check_expects(self, blocks: list[A.ExpectDecl]) -> list[P.Expectation]:
        """Every expectation of every block; one property of one model expected twice is an error
        (E503) with both positions, even when the verdicts agree."""
        out: list[P.Expectation] = []
        seen: dict[tuple[str, str], A.ExpectEntry] = {}
        for it in blocks:
            for e in it.entries:
                if e.verdict not in VERDICTS:
                    self.err("E501", f"unknown verdict '{e.verdict}'; expected one of {', '.join(VERDICTS)}", e.span)
                first = seen.setdefault((it.model, e.prop), e)
                if first is not e:
                    how = "contradicts" if first.verdict != e.verdict else "repeats"
                    self.err("E503", f"expectation '{e.prop}: {e.verdict}' for model '{it.model}' {how} "
                             f"'{first.prop}: {first.verdict}'", e.span, [("the first expectation is here", first.span)])
                    continue
                out.append(P.Expectation(it.model, e.prop, e.verdict, e.span))
        return out

    # ---- expressions ------------------------------------------------------------

    def lookup_local(self, name: str) -> P.Local | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def expr_or_none(self, e: A.Expr) -> P.Expr | None:
        try:
            return self.expr(e)
        except _Poison:
            return None

    def bool_expr(self, e: A.Expr) -> P.Expr:
        x = self.expr(e)
        if x.type != BOOL:
            self.err("E301", f"expected a condition (bool), got {x.type}", e.span)
            raise _Poison
        return x

    def expr(self, e: A.Expr) -> P.Expr:
        m = getattr(self, "x_" + type(e).__name__)
        return m(e)

    def x_BoolLit(self, e: A.BoolLit) -> P.Expr:
        return P.Const(BOOL, e.span, int(e.value))

    def x_NullLit(self, e: A.NullLit) -> P.Expr:
        return P.Const(NULL, e.span, -1)

    def x_IntLit(self, e: A.IntLit) -> P.Expr:
        return P.Const(INT, e.span, e.value)

    def x_ErrnoLit(self, e: A.ErrnoLit) -> P.Expr:
        if e.name not in ERRNOS:
            known = ", ".join("-" + k for k in sorted(ERRNOS))
            self.err("E304", f"unknown error name '-{e.name}'; known: {known}", e.span)
            raise _Poison
        return P.Const(ERR, e.span, -ERRNOS[e.name])

    def x_Name(self, e: A.Name) -> P.Expr:
        local = self.lookup_local(e.name)
        if local is not None:
            return P.LocalRef(local.type, e.span, local)
        if e.name in self.vars:
            v = self.vars[e.name]
            return P.GlobalRef(v.type, e.span, v)
        if e.name in self.members:
            t, i = self.members[e.name]
            return P.Const(t, e.span, i)
        if e.name in self.sorts:
            return P.SortAll(SetT((e.name,)), e.span, e.name)
        what = self.names.get(e.name, (None,))[0]
        if what is None:
            self.err("E201", f"undeclared name '{e.name}'", e.span)
        else:
            self.err("E203", f"'{e.name}' is a {what}, not a value", e.span)
        raise _Poison

    def x_SetLit(self, e: A.SetLit) -> P.Expr:
        if not e.items:
            return P.SetLiteral(SetT(None), e.span, [])
        items = [self.expr(i) for i in e.items]
        sorts = _tuple_sorts(items[0].type)
        for it in items:
            if _tuple_sorts(it.type) is None or _tuple_sorts(it.type) != sorts:
                self.err("E301", f"set elements must all be elements of one sort (or tuples), got {it.type}", it.span)
                raise _Poison
        return P.SetLiteral(SetT(sorts), e.span, items)

    def x_TupleLit(self, e: A.TupleLit) -> P.Expr:
        items = [self.expr(i) for i in e.items]
        for it in items:
            if not isinstance(it.type, ElemT):
                self.err("E301", f"tuple components must be sort elements, got {it.type}", it.span)
                raise _Poison
        return P.TupleLiteral(TupleT(tuple(i.type.sort for i in items)), e.span, items)

    def binders(self, binders: tuple[A.Binder, ...]) -> list[tuple[P.Local, P.Expr | None]]:
        out = []
        for b in binders:
            if b.sort is not None:
                s = self.sort_name(b.sort, b.span)
                if s is None:
                    raise _Poison
                local = P.Local(b.name, ElemT(s), b.span, "binder")
                out.append((local, None))
            else:
                dom = self.expr(b.domain)
                if not (isinstance(dom.type, SetT) and dom.type.sorts and len(dom.type.sorts) == 1):
                    self.err("E301", f"'{b.name} in ...' needs a set of one sort, got {dom.type}", b.domain.span)
                    raise _Poison
                local = P.Local(b.name, ElemT(dom.type.sorts[0]), b.span, "binder")
                out.append((local, dom))
            self.bind(local)
        return out

    def x_Quantified(self, e: A.Quantified) -> P.Expr:
        self.scopes.append({})
        try:
            bs = self.binders(e.binders)
            body = self.bool_expr(e.body)
        finally:
            self.scopes.pop()
        return P.Quant(BOOL, e.span, e.kind, bs, body)

    def x_Comprehension(self, e: A.Comprehension) -> P.Expr:
        self.scopes.append({})
        try:
            bs = self.binders(e.binders)
            body = self.bool_expr(e.cond)
        finally:
            self.scopes.pop()
        return P.Quant(SetT(tuple(b.type.sort for b, _ in bs)), e.span, "set", bs, body)

    def x_Unary(self, e: A.Unary) -> P.Expr:
        x = self.expr(e.operand)
        if e.op == "!":
            if x.type != BOOL:
                self.err("E301", f"'!' needs a condition (bool), got {x.type}", e.operand.span)
                raise _Poison
            return P.Op(BOOL, e.span, "!", [x])
        if not isinstance(x.type, SetT):
            self.err("E301", f"'#' counts the elements of a set, got {x.type}", e.operand.span)
            raise _Poison
        return P.Op(INT, e.span, "#", [x])

    def x_Binary(self, e: A.Binary) -> P.Expr:
        a, b = self.expr(e.left), self.expr(e.right)
        op = e.op
        if op in ("==>", "||", "&&"):
            for x, src in ((a, e.left), (b, e.right)):
                if x.type != BOOL:
                    self.err("E301", f"'{op}' needs conditions (bool), got {x.type}", src.span)
                    raise _Poison
            return P.Op(BOOL, e.span, op, [a, b])
        if op in ("==", "!="):
            if not comparable(a.type, b.type):
                self.err("E301", f"cannot compare {a.type} with {b.type}", e.span)
                raise _Poison
            return P.Op(BOOL, e.span, op, [a, b])
        if op in ("in", "notin"):
            sorts = _tuple_sorts(a.type)
            if not isinstance(b.type, SetT) or b.type.sorts is None:
                self.err("E301", f"right side of '{'not in' if op == 'notin' else 'in'}' must be a set, got {b.type}",
                         e.right.span)
                raise _Poison
            if sorts != b.type.sorts:
                self.err("E301", f"{a.type} cannot be a member of {b.type}", e.span)
                raise _Poison
            return P.Op(BOOL, e.span, op, [a, b])
        if op == "<=":
            if a.type == INT and b.type == INT:
                return P.Op(BOOL, e.span, "le", [a, b])
            self.same_sets(a, b, e, "<= (subset)")
            return P.Op(BOOL, e.span, op, [a, b])
        if op in ("+", "-", "&"):
            t = self.same_sets(a, b, e, op)
            return P.Op(t, e.span, op, [a, b])
        if op == "*":
            for x, src in ((a, e.left), (b, e.right)):
                if not isinstance(x.type, SetT) or x.type.sorts is None:
                    self.err("E301", f"'*' (product) needs sets of known type, got {x.type}", src.span)
                    raise _Poison
            return P.Op(SetT(a.type.sorts + b.type.sorts), e.span, op, [a, b])
        raise AssertionError(op)  # pragma: no cover

    def same_sets(self, a: P.Expr, b: P.Expr, e: A.Binary, what: str) -> SetT:
        if not isinstance(a.type, SetT) or not isinstance(b.type, SetT):
            bad = a if not isinstance(a.type, SetT) else b
            self.err("E301", f"'{what}' needs sets, got {bad.type}", bad.span)
            raise _Poison
        if a.type.sorts is not None and b.type.sorts is not None and a.type.sorts != b.type.sorts:
            self.err("E301", f"'{what}' of {a.type} and {b.type}: the sorts differ", e.span)
            raise _Poison
        return a.type if a.type.sorts is not None else b.type

    def x_Index(self, e: A.Index) -> P.Expr:
        base = self.expr(e.base)
        args = [self.expr(a) for a in e.args]
        t = self.index_type(base.type, args, e.span)
        if isinstance(base.type, MapT):
            return P.Lookup(t, e.span, base, args)
        return P.Image(t, e.span, base, args)

    def index_type(self, t: Type, args: list[P.Expr], span: Span, assigning: bool = False) -> Type:
        if isinstance(t, MapT):
            keys = t.keys
            if len(args) != len(keys):
                self.err("E302", f"{t} takes {len(keys)} key(s), {len(args)} given", span)
                raise _Poison
            result = t.value
        elif isinstance(t, SetT) and t.sorts and len(t.sorts) > 1:
            keys = t.sorts[: len(args)]
            if len(args) >= len(t.sorts):
                self.err("E302", f"{t} can be indexed by at most {len(t.sorts) - 1} element(s); "
                         "use 'in' to test a whole tuple", span)
                raise _Poison
            result = SetT(t.sorts[len(args):])
        else:
            self.err("E301", f"{t} cannot be indexed" + ("" if assigning else "; only maps and relations can"), span)
            raise _Poison
        for a, k in zip(args, keys):
            if not (isinstance(a.type, ElemT) and a.type.sort == k):
                self.err("E301", f"index must be a {k}, got {a.type}", a.span)
                raise _Poison
        return result


def _tuple_sorts(t: Type) -> tuple[str, ...] | None:
    if isinstance(t, ElemT):
        return (t.sort,)
    if isinstance(t, TupleT):
        return t.sorts
    return None


def _calls(stmts: list[P.Stmt]):
    for s in stmts:
        if isinstance(s, P.SCall):
            yield s
        for sub in ("then", "orelse", "body"):
            yield from _calls(getattr(s, sub, None) or [])


def _signature(decl: A.ProcDecl) -> str:
    kw = "op" if decl.is_op else "proc"
    return f"{kw} {decl.name}({', '.join(type_text(p.type) for p in decl.params)})"

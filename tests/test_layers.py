"""The import layers of ARCHITECTURE.md: a module imports only from its own layer or the ones
below it (stdlib `ast`, every module of the package, imports inside functions included)."""
import ast
import os

from conftest import ROOT

# lowest first; a module belongs to the first layer with a prefix that matches its name
LAYERS = [
    ("base", ["apcheck.diagnostics", "apcheck.results", "apcheck.files", "apcheck"]),
    ("report", ["apcheck.report"]),
    ("ir data", ["apcheck.ir.types", "apcheck.ir.program"]),
    ("lang, C source", ["apcheck.lang", "apcheck.csource"]),
    ("lowering", ["apcheck.ir.lowered", "apcheck.ir.lower", "apcheck.ir"]),
    ("explore, locks, lockdep", ["apcheck.explore", "apcheck.locks", "apcheck.lockdep"]),
    ("smt", ["apcheck.smt"]),
    ("commands", ["apcheck.commands"]),
    ("cli", ["apcheck.cli", "apcheck.__main__"]),
]


def layer_of(module: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "apcheck"):
            return i
    assert module == "apcheck", module
    return 0


def modules() -> dict[str, str]:
    out = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "apcheck")):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[name.removesuffix(".__init__")] = path
    return out


def imports(path: str, name: str) -> list[tuple[str, int]]:
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    out = []
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("apcheck")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("apcheck"):
                # `from apcheck.x import y` may import the module apcheck.x.y
                out += [(f"{base}.{a.name}" if f"{base}.{a.name}" in ALL else base, node.lineno) for a in node.names]
    return out


ALL = modules()


def test_every_module_has_a_layer():
    for name in ALL:
        layer_of(name)


def test_no_module_imports_a_layer_above_it():
    bad = []
    for name, path in sorted(ALL.items()):
        mine = layer_of(name)
        for target, line in imports(path, name):
            if layer_of(target) > mine:
                bad.append(f"{os.path.relpath(path, ROOT)}:{line}: {name} ({LAYERS[mine][0]}) imports "
                           f"{target} ({LAYERS[layer_of(target)][0]})")
    assert not bad, "\n".join(bad)


def test_renderers_read_only_results():
    for name, path in ALL.items():
        if name.startswith("apcheck.report"):
            for target, line in imports(path, name):
                assert target.startswith(("apcheck.report", "apcheck.results")) or target == "apcheck", \
                    f"{name}:{line} imports {target}"


def test_architecture_lists_the_layers():
    text = open(os.path.join(ROOT, "ARCHITECTURE.md"), encoding="utf-8").read()
    section = text.split("## Layers", 1)[1]
    for title, _ in LAYERS:
        assert f"| {title} |" in section, title

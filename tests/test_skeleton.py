"""`apcheck extract --skeleton`: a model skeleton of our C fixtures. It parses; `apcheck check`
names exactly its holes; with the holes declared, `apcheck drift` finds its lock structure equal
to the C it came from; goto unwinding, guards, trylocks and what the language cannot say come out
as documented."""
import re

from apcheck.commands.drift import drift
from apcheck.commands.model import load_program
from apcheck.csource.skeleton import skeleton
from apcheck.diagnostics import DiagnosticError
from apcheck.lang.parser import parse
from conftest import run_main

FIXTURES = ["tests/c/locks_demo.c", "tests/c/widget.c"]


def filled(text: str) -> str:
    """The skeleton with every hole declared (a loop's as a set, a condition's as a flag)."""
    loops = set(re.findall(r"for x in (hole_\w+)", text))
    conds = set(re.findall(r"\bhole_\d+(?:_\d+)?", text)) - loops
    decls = ["sort Hole bound 1"] + [f"var {h}: set<Hole> = Hole" for h in sorted(loops)] + \
            [f"var {h}: bool = false" for h in sorted(conds)]
    return "\n".join(decls) + "\n" + text


def function(text: str, name: str) -> str:
    return re.search(rf"(?ms)^(op|proc) {name}\(\).*?^}}$", text).group(0)


def test_the_skeleton_parses_and_check_names_every_hole(tmp_path):
    for source in FIXTURES:
        text = skeleton([source])
        parse(text, "skeleton.apm")
        path = tmp_path / "skeleton.apm"
        path.write_text(text)
        try:
            load_program(str(path))
            raise AssertionError("a skeleton with holes checked")
        except DiagnosticError as err:
            named = {d.message for d in err.diagnostics}
        holes = set(re.findall(r"\bhole_\d+(?:_\d+)?", text))
        assert holes and named == {f"undeclared name '{h}'" for h in holes}


def test_with_its_holes_declared_the_skeleton_locks_as_the_c_does(tmp_path):
    for source in FIXTURES:
        path = tmp_path / "skeleton.apm"
        path.write_text(filled(skeleton([source])))
        report = drift(load_program(str(path)), [source])
        assert report.findings == [] and not report.drifted, source
        assert len(report.compared) >= 4


def test_goto_unwinding_is_written_out_to_the_end_of_the_function():
    text = skeleton(["tests/c/locks_demo.c"])
    assert function(text, "widget_setup") == "\n".join([
        "op widget_setup() {  // tests/c/locks_demo.c:64 (struct widget *w)",
        "    acquire host->lock",
        "    // C 69: ret = widget_alloc(w);",
        "    if hole_70 {  // C 70: ret",
        "        // C 71: goto err_unlock_host",
        "        release host->lock",
        "        return  // C 84: return ret",
        "    }",
        "    acquire w->lock",
        "    // C 73: ret = widget_register(w);",
        "    if hole_74 {  // C 74: ret",
        "        // C 75: goto err_unlock_widget",
        "        release w->lock",
        "        release host->lock",
        "        return  // C 84: return ret",
        "    }",
        "    release w->lock",
        "    release host->lock",
        "    return 0",
        "}"])


def test_guards_trylocks_and_what_the_language_cannot_say():
    text = skeleton(["tests/c/locks_demo.c"])
    assert function(text, "widget_guarded").splitlines()[1:6] == [
        "    acquire host->lock  // C 107: guard(mutex)",
        "    if hole_108 {  // C 108: !w->kvm",
        "        release host->lock",        # the guard is released at the return
        "        return -ENODEV",
        "    }"]
    assert "    if !trylock w->lock {  // C 89: !mutex_trylock(&w->lock)" in function(text, "widget_poke")
    assert "the path where it fails is not in the skeleton (hole)" in function(text, "widget_wait")
    assert "// hole (C 140): lockdep_assert_held(&w->lock)" in function(text, "widget_wait")
    assert "// hole (C 131): the macro WIDGET_LOCK_ALL() (defined at tests/c/locks_demo.c:29) takes a lock" \
        in function(text, "widget_macro")
    assert "    for x in hole_121 {  // C 121: list_for_each_entry(w, &host->widgets, node)" \
        in function(text, "widget_scan")
    assert text.startswith("// Skeleton of tests/c/locks_demo.c")
    assert "lock kvm->lock: mutex  // tests/c/locks_demo.c:35 mutex_lock(&w->kvm->lock), one per object? " \
           "then lock kvm->lock[Sort]" in text
    assert "proc widget_get_locks()" in text and "op widget_assign()" in text   # a helper is a proc


def test_the_cli_writes_the_skeleton_and_refuses_json(tmp_path):
    out = tmp_path / "widget.apm"
    done = run_main("extract", "tests/c/widget.c", "--skeleton", "-o", str(out))
    assert done.returncode == 0 and out.read_text() == skeleton(["tests/c/widget.c"])
    done = run_main("extract", "tests/c/widget.c", "--skeleton", "--format", "json")
    assert done.returncode == 2 and "--skeleton writes a model" in done.stderr

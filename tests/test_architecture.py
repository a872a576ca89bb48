"""The shape of the library: layers that only import downwards, no cycles, small modules and
functions, one name per constant, and no control characters in the sources.

The layers are the folders of ``thesis_lib`` (a module belongs to the layer it is put in), in this order,
each importing only itself and the layers before it:

- ground: checks, files, paths, configurations, command-line errors;
- mathematics: what the thesis defines and states;
- runtime: what trains and stores the models;
- publishing and reproduction, side by side: what the chapters show, and what retrains every
  experiment; neither imports the other.

The layers below publishing know nothing of the book: they import no notebook machinery and name no
variable of the book's build.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "thesis_lib"
ORDER = ("ground", "mathematics", "runtime", ("publishing", "reproduction"))
RANK = {name: rank for rank, entry in enumerate(ORDER) for name in (entry if isinstance(entry, tuple) else (entry,))}
LAYERS = sorted(p.name for p in LIB.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
LAYER = {p.stem: p.parent.name for layer in LAYERS for p in (LIB / layer).glob("*.py") if p.stem != "__init__"}
MODULES = sorted(LAYER)
PLOTTING = {"plotting", "image_plots", "diagrams"}  # figure code: long functions allowed
BELOW_THE_BOOK = {"ground", "mathematics", "runtime"}
THE_BOOK = ("myst_nb", "nbformat", "papermill", "IPython", "sphinx", "THESIS_READS_LOG")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _path(module: str) -> Path:
    return LIB / LAYER[module] / f"{module}.py"


def _tree(module: str) -> ast.Module:
    return ast.parse(_path(module).read_text(encoding="utf-8"))


def _library_imports(node: ast.AST) -> set[str]:
    """The thesis_lib modules that the import statements directly inside ``node`` name (``from thesis_lib import
    vae``, the mathematics's short form, included)."""
    names = set()
    for stmt in ast.walk(node) if isinstance(node, ast.FunctionDef) else ast.iter_child_nodes(node):
        if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.module.split(".")[0] == "thesis_lib":
            parts = stmt.module.split(".")
            if len(parts) <= 2:  # thesis_lib or thesis_lib.<layer>: the names are modules
                names |= {a.name for a in stmt.names if a.name in LAYER}
            else:
                names.add(parts[2])
        elif isinstance(stmt, ast.Import):
            names |= {a.name.split(".")[2] for a in stmt.names
                      if a.name.startswith("thesis_lib.") and a.name.count(".") >= 2}
    return names


def _graph() -> dict[str, set[str]]:
    """Module -> the thesis_lib modules it imports at module level (``if TYPE_CHECKING`` included)."""
    graph = {}
    for module in MODULES:
        tree = _tree(module)
        deps = _library_imports(tree)
        for node in tree.body:
            if isinstance(node, ast.If):  # e.g. `if TYPE_CHECKING:` blocks
                deps |= _library_imports(node)
        graph[module] = deps - {module}
    return graph


def test_every_folder_is_a_layer_and_no_module_is_outside_one():
    assert set(LAYERS) == set(RANK), f"the folders of thesis_lib are {LAYERS}; the layers are {sorted(RANK)}"
    loose = sorted(p.name for p in LIB.glob("*.py") if p.stem != "__init__")
    assert not loose, f"modules outside every layer: {loose}"
    twice = [m for m in MODULES if sum((LIB / layer / f"{m}.py").is_file() for layer in LAYERS) > 1]
    assert not twice, f"one name in two layers: {twice}"


@pytest.mark.parametrize("module", MODULES)
def test_imports_go_downwards_only(module):
    rank = RANK[LAYER[module]]
    wrong = {dep for dep in _graph()[module] if RANK[LAYER[dep]] > rank
             or (RANK[LAYER[dep]] == rank and LAYER[dep] != LAYER[module])}
    assert not wrong, f"{module} ({LAYER[module]}) imports a higher or sibling layer: {sorted(wrong)}"


@pytest.mark.parametrize("module", [m for m in MODULES if LAYER[m] in BELOW_THE_BOOK])
def test_the_layers_below_publishing_know_nothing_of_the_book(module):
    text = _path(module).read_text(encoding="utf-8")
    imported = {a.name.split(".")[0] for n in ast.walk(_tree(module)) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(_tree(module)) if isinstance(n, ast.ImportFrom) and n.module}
    found = [name for name in THE_BOOK if name in imported or f'"{name}"' in text]
    assert not found, f"{module} ({LAYER[module]}) knows the book: {found}"


def test_the_book_check_can_fail():
    tree = ast.parse("from myst_nb import glue\nimport IPython.display\n")
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert {"myst_nb", "IPython"} <= imported


def test_the_mathematics_has_short_names():
    import thesis_lib
    from thesis_lib import vae
    from thesis_lib.mathematics import vae as long_name

    assert vae is long_name
    with pytest.raises(AttributeError, match="no attribute 'data'"):
        thesis_lib.data  # noqa: B018  (the runtime's data has no short name)


def test_no_import_cycle():
    graph, state, cycles = _graph(), {}, []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(path[path.index(dep):] + [dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for module in MODULES:
        if module not in state:
            visit(module, [module])
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("module", MODULES)
def test_no_library_import_inside_a_function(module):
    hidden = [f"{module}.py:{f.lineno} {f.name}" for f in ast.walk(_tree(module))
              if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and _library_imports(f)]
    assert not hidden, f"thesis_lib imported inside functions: {hidden}"


@pytest.mark.parametrize("module", MODULES)
def test_modules_and_functions_are_small(module):
    lines = len(_path(module).read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module}.py has {lines} lines (at most {MAX_MODULE_LINES})"
    if module in PLOTTING:
        return
    long = [f"{f.name} ({f.end_lineno - f.lineno + 1} lines)" for f in ast.walk(_tree(module))
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            and f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{module}.py: functions over {MAX_FUNCTION_LINES} lines: {long}"


SOURCES = sorted([*LIB.rglob("*.py"), *(ROOT / "tests").glob("*.py"), *(ROOT / "book").glob("*.py"),
                  *(ROOT / "benchmarks").glob("*.py"), *(ROOT / "notebooks").glob("*.md")])
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # everything below a space but newline and tab; DEL


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_control_characters_in_sources(path):
    """A non-raw docstring turns `\\frac` into a form feed and `\\big` into a backspace; this catches
    them (and any other stray control character) in every source file."""
    text = path.read_text(encoding="utf-8")
    found = [(text.count("\n", 0, m.start()) + 1, hex(ord(m.group()))) for m in CONTROL.finditer(text)]
    assert not found, f"{path.relative_to(ROOT)}: control characters at (line, code) {found[:5]}"


def test_the_control_character_check_can_fail():
    assert CONTROL.search("a \\frac b") is None and CONTROL.search("a \frac b")
    assert CONTROL.search("\\big") is None and CONTROL.search("\big")


def test_the_names_in_config_are_the_implemented_ones():
    from thesis_lib.runtime import models
    from thesis_lib.ground.config import LOSSES, MODEL_KINDS, OPTIMIZERS
    from thesis_lib.runtime.training import make_objective, make_optimizer

    assert tuple(models.BUILDERS) == MODEL_KINDS
    for loss in LOSSES:
        assert callable(make_objective(loss))
    for name in OPTIMIZERS:
        make_optimizer(name, [__import__("torch").zeros(1, requires_grad=True)], lr=0.1)


def test_the_thesis_networks_widths_are_written_once():
    """Algorithm 2's widths live in autoencoders.THESIS_WIDTHS; no other module spells them out."""
    literal = re.compile(r"784,\s*128,\s*64,\s*12,\s*3")
    holders = [m for m in MODULES if literal.search(_path(m).read_text(encoding="utf-8"))]
    assert holders == ["autoencoders"], f"the thesis network's widths are written in {holders}"

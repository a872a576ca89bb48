"""The shape of the library: layers that only import downwards, no cycles, small modules and
functions, one name per constant, and no control characters in the sources.

``thesis_lib`` is flat on purpose (a module is named after what it holds, and the book's imports stay
short); the architecture is written here instead of in folders. Three layers, each importing only
itself and the layers below:

- ground: validation, files, paths, config (what every other module may use);
- mathematics: what the thesis defines and states (activations, networks, risk, optimisers, image
  operators, losses, divergences, autoencoders, PCA, VAE, metrics);
- machinery: what trains, stores and publishes (data, models, training, checkpoints, runs,
  experiments, process, provenance, the plotting modules, chapter, comparisons, likelihoods, tasks,
  reproduce and its report, seeds).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "thesis_lib"
MODULES = sorted(p.stem for p in LIB.glob("*.py") if p.stem != "__init__")

GROUND = {"validation", "files", "paths", "config"}
MATHEMATICS = {"activations", "networks", "risk", "optimizers", "image_ops", "losses", "divergences",
               "autoencoders", "pca", "vae", "metrics"}
PLOTTING = {"plotting", "image_plots", "diagrams"}  # figure code: long functions allowed
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _tree(module: str) -> ast.Module:
    return ast.parse((LIB / f"{module}.py").read_text(encoding="utf-8"))


def _library_imports(node: ast.AST) -> set[str]:
    """The thesis_lib modules that the import statements directly inside ``node`` name."""
    names = set()
    for stmt in ast.walk(node) if isinstance(node, ast.FunctionDef) else ast.iter_child_nodes(node):
        if isinstance(stmt, ast.ImportFrom) and stmt.module:
            if stmt.module == "thesis_lib":
                names |= {a.name for a in stmt.names if a.name in MODULES}
            elif stmt.module.startswith("thesis_lib."):
                names.add(stmt.module.split(".")[1])
        elif isinstance(stmt, ast.Import):
            names |= {a.name.split(".")[1] for a in stmt.names if a.name.startswith("thesis_lib.")}
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


def _layer(module: str) -> int:
    return 0 if module in GROUND else 1 if module in MATHEMATICS else 2


def test_every_module_has_a_layer():
    assert GROUND | MATHEMATICS <= set(MODULES), "a module named in a layer is missing"


@pytest.mark.parametrize("module", MODULES)
def test_imports_go_downwards_only(module):
    upward = {dep for dep in _graph()[module] if _layer(dep) > _layer(module)}
    assert not upward, f"{module} (layer {_layer(module)}) imports a higher layer: {sorted(upward)}"


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
    lines = len((LIB / f"{module}.py").read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module}.py has {lines} lines (at most {MAX_MODULE_LINES})"
    if module in PLOTTING:
        return
    long = [f"{f.name} ({f.end_lineno - f.lineno + 1} lines)" for f in ast.walk(_tree(module))
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            and f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{module}.py: functions over {MAX_FUNCTION_LINES} lines: {long}"


SOURCES = sorted([*LIB.glob("*.py"), *(ROOT / "tests").glob("*.py"), *(ROOT / "book").glob("*.py"),
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
    from thesis_lib import models
    from thesis_lib.config import LOSSES, MODEL_KINDS, OPTIMIZERS
    from thesis_lib.training import make_objective, make_optimizer

    assert tuple(models.BUILDERS) == MODEL_KINDS
    for loss in LOSSES:
        assert callable(make_objective(loss))
    for name in OPTIMIZERS:
        make_optimizer(name, [__import__("torch").zeros(1, requires_grad=True)], lr=0.1)


def test_the_thesis_networks_widths_are_written_once():
    """Algorithm 2's widths live in autoencoders.THESIS_WIDTHS; no other module spells them out."""
    literal = re.compile(r"784,\s*128,\s*64,\s*12,\s*3")
    holders = [m for m in MODULES if literal.search((LIB / f"{m}.py").read_text(encoding="utf-8"))]
    assert holders == ["autoencoders"], f"the thesis network's widths are written in {holders}"

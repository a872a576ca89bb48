"""Numbers in a chapter's prose come from its cells (myst-nb glue).

A result that a re-execution could change (a loss, an NLL, a count of active units, ...) is written
in the prose as ``{glue:text}`chN_key:fmt``` and glued in a code cell of the same chapter with
``glue("chN_key", value, display=False)``. These tests read the MyST sources (with jupytext, as
``book/build.py`` does) and check that

- every key the prose uses is glued by a code cell of the same chapter, and every glued key is used;
- keys carry the chapter's prefix (``ch4_`` for chapter 04), so that no two chapters share a key;
- the committed executed notebook (``book/chapters/NN_slug.ipynb``) holds the glued value of every
  key the prose uses. myst-nb 1.x stores it as a ``display_data`` output whose metadata is
  ``{"scrapbook": {"name": key, "mime_prefix": ...}}``. When the committed notebook does not match
  its source (it predates the latest edit and has not been re-executed yet), that check is skipped
  with a message naming the difference.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = ROOT / "book" / "chapters"
sys.path.insert(0, str(ROOT / "book"))
import sources  # noqa: E402

# glue("key", ...) in a code cell; the first argument must be a string literal
GLUE_CALL = re.compile(r"""\bglue\(\s*(["'])(?P<key>[^"']+)\1""")
# {glue}`key`, {glue:text}`key:.2f`, {glue:any}`key`, ... in the prose
GLUE_ROLE = re.compile(r"\{glue(?::(?P<kind>[a-z]+))?\}`(?P<content>[^`]+)`")
# the glue directives, ```{glue:figure} key or ```{glue} key
GLUE_DIRECTIVE = re.compile(r"^(?:`{3,}|:{3,})\{glue(?::[a-z]+)?\}[ \t]+(?P<key>\S+)", re.MULTILINE)

SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md"))


def _role_key(kind: str | None, content: str) -> str:
    """The key of a glue role's content: ``key`` or, for ``glue:text``, ``key:format_spec``."""
    if kind == "text" and ":" in content.replace("::", ""):
        content = content.rsplit(":", 1)[0]
    return content.split("::", 1)[-1]  # ``doc::key`` pastes from another document


def parse(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Glued keys (code cells) and used keys (markdown cells) of a MyST chapter, each with a count."""
    nb = sources.read_source(path)
    glued: dict[str, int] = {}
    used: dict[str, int] = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            for m in GLUE_CALL.finditer(cell.source):
                glued[m["key"]] = glued.get(m["key"], 0) + 1
        elif cell.cell_type == "markdown":
            keys = [_role_key(m["kind"], m["content"]) for m in GLUE_ROLE.finditer(cell.source)]
            keys += [m["key"] for m in GLUE_DIRECTIVE.finditer(cell.source)]
            for key in keys:
                used[key] = used.get(key, 0) + 1
    return glued, used


def executed_glue_keys(nb: nbformat.NotebookNode) -> set[str]:
    """Keys of the glued values stored in an executed notebook's outputs (myst-nb 1.x format)."""
    keys = set()
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") in ("display_data", "execute_result"):
                meta = output.get("metadata", {}).get("scrapbook")
                if meta and "name" in meta:
                    keys.add(meta["name"])
    return keys


@pytest.fixture(params=SOURCES, ids=lambda p: p.stem)
def chapter(request: pytest.FixtureRequest) -> tuple[Path, dict[str, int], dict[str, int]]:
    return (request.param, *parse(request.param))


def test_parser_reads_roles_and_calls() -> None:
    assert _role_key("text", "ch4_ae_test_mse:.2f") == "ch4_ae_test_mse"
    assert _role_key("text", "ch4_count") == "ch4_count"
    assert _role_key(None, "ch4_count") == "ch4_count"
    assert _role_key("text", "other::ch4_loss:.1f") == "ch4_loss"
    prose = "a loss of {glue:text}`ch4_a:.2f` and {glue}`ch4_b`, not `glue(\"x\")`"
    assert [_role_key(m["kind"], m["content"]) for m in GLUE_ROLE.finditer(prose)] == ["ch4_a", "ch4_b"]
    code = 'glue("ch4_a", 1.0, display=False)\nglue(\n    "ch4_b", x)\nmy_glue("no", 1)'
    assert [m["key"] for m in GLUE_CALL.finditer(code)] == ["ch4_a", "ch4_b"]


def test_every_used_key_is_glued(chapter) -> None:
    path, glued, used = chapter
    missing = sorted(set(used) - set(glued))
    assert not missing, f"{path.name}: the prose uses glue keys that no code cell glues: {missing}"


def test_every_glued_key_is_used(chapter) -> None:
    path, glued, used = chapter
    unused = sorted(set(glued) - set(used))
    assert not unused, f"{path.name}: glued but never used in the prose: {unused}"


def test_keys_are_glued_once_and_carry_the_chapter_prefix(chapter) -> None:
    path, glued, used = chapter
    prefix = f"ch{int(path.name[:2])}_"
    assert not [k for k in {*glued, *used} if not k.startswith(prefix)], f"{path.name}: keys need {prefix!r}"
    twice = sorted(k for k, n in glued.items() if n > 1)
    assert not twice, f"{path.name}: keys glued by more than one call: {twice}"


def test_committed_notebook_carries_the_glued_values(chapter) -> None:
    path, glued, used = chapter
    if not used:
        pytest.skip(f"{path.name} uses no glue")
    executed = CHAPTERS / f"{path.stem}.ipynb"
    if not executed.exists():
        pytest.skip(f"no committed notebook {executed.relative_to(ROOT)}")
    nb = nbformat.read(executed, as_version=4)
    difference = sources.compare_cells(sources.read_source(path), nb)
    if difference:
        pytest.skip(f"{executed.name} predates its source ({difference}); re-execute it with "
                    f"python book/build.py --chapter {path.name[:2]}")
    missing = sorted(set(used) - executed_glue_keys(nb))
    assert not missing, f"{executed.name} holds no glued value for {missing}"

"""Tests of the index of the thesis (book/thesis_index.py, book/thesis_index.md).

In-process and quick: the chapters' sources and the library are read, nothing is executed or imported
from them.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book"))  # thesis_index and sources, as build.py imports them
import thesis_index  # noqa: E402
from thesis_index import ThesisIndexError, build_index, generate, item_name  # noqa: E402
import website  # noqa: E402

THESIS_TEXT = Path("/work/shared/thesis/000_8eead3e52747ac38.txt")


@pytest.fixture(scope="module")
def entries() -> list[thesis_index.Entry]:
    return build_index()


def test_the_typed_numbering_has_the_thesis_s_49_items() -> None:
    items = thesis_index.thesis_items()
    assert len(items) == len(set(items)) == 49
    kinds = [kind for kind, _ in items]
    assert {kind: kinds.count(kind) for kind in set(kinds)} == {
        "definition": 22, "lemma": 4, "proposition": 5, "theorem": 3, "corollary": 2, "example": 3, "remark": 4,
        "algorithm": 2, "figure": 4}
    # within a section, statements are numbered in order; figures and algorithms each count on their own
    for kind in ("figure", "algorithm"):
        numbers = [tuple(map(int, n.split("."))) for k, n in items if k == kind]
        assert numbers == sorted(numbers)
    statements = [tuple(map(int, n.split("."))) for k, n in items if k not in ("figure", "algorithm")]
    assert statements == sorted(statements)


@pytest.mark.skipif(not THESIS_TEXT.exists(), reason="the thesis's text is not on this machine")
def test_the_typed_numbering_is_the_thesis_s_order() -> None:
    text = THESIS_TEXT.read_text(encoding="utf-8")
    found = re.findall(r"^(Definition|Lemma|Proposition|Theorem|Corollary|Example|Remark|Algorithm|Figure) "
                       r"(\d+(?:\.\d+)*)(?=[.: ])", text, re.MULTILINE)
    seen = list(dict.fromkeys((kind.lower(), number) for kind, number in found))  # "Lemma 1.3.7 allows us ..."
    assert seen == thesis_index.thesis_items()


def test_the_index_has_every_item_once_in_the_thesis_s_order(entries: list[thesis_index.Entry]) -> None:
    assert [e.item for e in entries] == thesis_index.thesis_items()
    assert len(entries) == 49


def test_every_item_has_a_home_in_a_chapter(entries: list[thesis_index.Entry]) -> None:
    for e in entries:
        source = ROOT / "notebooks" / f"{e.home.chapter}.md"
        lines = source.read_text(encoding="utf-8").splitlines()
        at = lines[e.home.line - 1]
        if e.item[0] == "figure":
            assert e.home.label is None and "ch.figure(" in "\n".join(lines[e.home.line - 1:e.home.line + 12])
            assert e.home.anchor, e.name  # linked through the section it stands in
        else:
            kind, number = e.item
            assert at.startswith(f"```{{prf:{kind}}} {number}"), (e.name, at)
            assert e.home.label == f"{thesis_index.PROOF_PREFIXES[kind]}-{number.replace('.', '-')}"
            assert f":label: {e.home.label}" in lines[e.home.line]


def test_homes_titles_checks_and_errata_of_some_items(entries: list[thesis_index.Entry]) -> None:
    by_name = {e.name: e for e in entries}
    phi_layer = by_name["Definition 1.1.4"]
    assert (phi_layer.home.chapter, phi_layer.home.label, phi_layer.home.title) == (
        "01_neural_networks", "def-1-1-4", "φ-layer")
    assert phi_layer.errata == [("E3", "errata-e3")]
    assert by_name["Theorem 1.2.5"].errata == [(f"E{n}", f"errata-e{n}") for n in range(4, 9)]
    # one erratum heading naming four definitions, and a heading "Definition 1.3.3 against Lemma 1.3.7"
    for name in ("Definition 2.1.1", "Definition 2.1.2", "Definition 2.3.1", "Definition 2.3.2"):
        assert ("E23", "errata-e23") in by_name[name].errata
    assert ("E15", "errata-e15") in by_name["Definition 1.3.3"].errata
    assert ("E15", "errata-e15") in by_name["Lemma 1.3.7"].errata
    assert by_name["Definition 1.1.1"].errata == []
    # Figures 2.2 and 2.3 share the cell that saves "ch4_figures_2_2_and_2_3"
    fig22, fig23 = by_name["Figure 2.2"].home, by_name["Figure 2.3"].home
    assert (fig22.chapter, fig22.line) == (fig23.chapter, fig23.line)
    assert by_name["Figure 1.1"].home.anchor == "figure-1-1-redrawn"
    # checks are counted in the item's part of its section
    assert by_name["Theorem 1.2.5"].home.checks >= 1  # its checks stand in its subsections
    assert all(e.home.checks >= 0 for e in entries)


def test_library_tags_are_picked_up(entries: list[thesis_index.Entry]) -> None:
    by_name = {e.name: e for e in entries}
    assert "thesis_lib.mathematics.networks.PhiLayer" in by_name["Definition 1.1.4"].library
    assert "thesis_lib.mathematics.networks.PhiLayer.neuron" in by_name["Definition 1.1.4"].library  # a method
    assert "thesis_lib.mathematics.optimizers.Adam" in by_name["Algorithm 1"].library
    assert "thesis_lib.runtime.data" in by_name["Proposition 2.3.4"].library  # a module docstring
    for name in ("Definition 2.3.1", "Definition 2.3.2", "Definition 2.3.3"):  # "Definitions 2.3.1-2.3.3"
        assert "thesis_lib.runtime.comparisons.superposition_defect" in by_name[name].library
    for number in ("1.1", "2.1", "2.2", "2.3"):  # "Figure 1.1, Figure 2.1, ..." after "Eq. (1.3)"
        assert "thesis_lib.publishing.diagrams.network_diagram" in by_name[f"Figure {number}"].library
    # an aside in parentheses does not count: "Definition 1.2.3 (estimated by Definition 1.2.4, ...)"
    assert "thesis_lib.mathematics.risk.monte_carlo_risk" in by_name["Definition 1.2.3"].library
    assert "thesis_lib.mathematics.risk.monte_carlo_risk" not in by_name["Definition 1.2.4"].library


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("Thesis: Definition 1.1.4, Eq. (1.2).", ["Definition 1.1.4"]),
        ("Definitions 2.3.1-2.3.3, Section 2.3", ["Definition 2.3.1", "Definition 2.3.2", "Definition 2.3.3"]),
        ("Propositions 1.3.12 and 1.3.13, Eqs. (1.9), (1.10)", ["Proposition 1.3.12", "Proposition 1.3.13"]),
        ("Definitions 2.1.1, 2.1.2, 2.3.1, 2.3.2: one width too few",
         ["Definition 2.1.1", "Definition 2.1.2", "Definition 2.3.1", "Definition 2.3.2"]),
        ("Definition 1.3.3 against Lemma 1.3.7", ["Definition 1.3.3", "Lemma 1.3.7"]),
        ("Algorithm 2, 10.000 epochs", ["Algorithm 2"]),
        ("{prf:ref}`the layer <def-1-1-4>` and alg-2", ["Definition 1.1.4", "Algorithm 2"]),
        ("Section 3.1 (unfinished); Kingma & Welling (2014), Eq. (10).", []),
    ],
)
def test_mentioned_items(text: str, items: list[str]) -> None:
    assert [item_name(item) for item in thesis_index.mentioned_items(text)] == items


def copy_sources(tmp_path: Path) -> Path:
    notebooks = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks)
    return notebooks


def remove_block(text: str, label: str) -> str:
    """``text`` without the proof block labelled ``label``."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == f":label: {label}") - 1
    end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "```")
    return "".join(lines[:start] + lines[end + 1:])


def test_an_item_without_a_home_fails_naming_it(tmp_path: Path) -> None:
    notebooks = copy_sources(tmp_path)
    chapter = notebooks / "01_neural_networks.md"
    chapter.write_text(remove_block(chapter.read_text(encoding="utf-8"), "def-1-1-4"), encoding="utf-8")
    with pytest.raises(ThesisIndexError, match=r"no home in the chapters .*for Definition 1\.1\.4$") as info:
        generate(notebooks)
    assert "Definition 1.1.3" not in str(info.value)


def test_a_figure_without_a_home_fails_naming_it(tmp_path: Path) -> None:
    notebooks = copy_sources(tmp_path)
    chapter = notebooks / "04_autoencoders.md"
    text = chapter.read_text(encoding="utf-8")
    assert '"ch4_figures_2_2_and_2_3"' in text
    chapter.write_text(text.replace('"ch4_figures_2_2_and_2_3"', '"ch4_encoder_and_decoder"'), encoding="utf-8")
    with pytest.raises(ThesisIndexError, match=r"Figure 2\.2, Figure 2\.3"):
        generate(notebooks)


def test_a_block_the_thesis_does_not_number_fails(tmp_path: Path) -> None:
    notebooks = copy_sources(tmp_path)
    chapter = notebooks / "02_training.md"
    text = chapter.read_text(encoding="utf-8")
    chapter.write_text(text.replace("```{prf:theorem} 1.2.8 (", "```{prf:theorem} 1.2.9 (")
                       .replace(":label: thm-1-2-8", ":label: thm-1-2-9"), encoding="utf-8")
    with pytest.raises(ThesisIndexError) as info:
        generate(notebooks)
    message = str(info.value)
    assert "for Theorem 1.2.8" in message and "Theorem 1.2.9 (02_training.md:" in message


def test_write_index_is_atomic_and_writes_only_changes(tmp_path: Path) -> None:
    page = tmp_path / "thesis_index.md"
    assert thesis_index.write_index(page) is True
    assert page.read_text(encoding="utf-8") == generate()
    assert thesis_index.write_index(page) is False  # unchanged: not touched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis_index.md"]  # no temporary file left


def test_the_page_links_every_item_and_lists_the_library(entries: list[thesis_index.Entry]) -> None:
    page = generate()
    rows = [line for line in page.splitlines() if line.startswith("| ") and not line.startswith(("| Item", "| ---"))]
    assert len(rows) == 49
    for e, row in zip(entries, rows):
        if e.home.label:
            assert row.startswith(f"| {{prf:ref}}`{e.name} <{e.home.label}>` |"), row
        else:
            href = f"chapters/{e.home.chapter}.html#{e.home.anchor}"
            assert row.startswith(f'| <a class="reference internal" href="{href}">{e.name}</a> |'), row
        for name in e.library:
            assert f"`{name}`" in row
    assert "`thesis_lib.mathematics.networks.PhiLayer`" in rows[3]


def test_the_page_in_the_repository_is_up_to_date() -> None:
    page = ROOT / "book" / "thesis_index.md"
    assert page.read_text(encoding="utf-8") == generate(), \
        "book/thesis_index.md is out of date: run python book/thesis_index.py (book/build.py does it too)"


def test_the_page_is_in_the_table_of_contents() -> None:
    assert "thesis_index" in website.toc_files(ROOT / "book")


@pytest.fixture(scope="module")
def build() -> Any:
    spec = importlib.util.spec_from_file_location("book_build_for_index", ROOT / "book" / "build.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


class _Stop(Exception):
    pass


def _no_execution(*args: Any, **kwargs: Any) -> None:
    raise _Stop("execute_chapters was called")


def test_a_rendering_build_writes_the_index_before_it_executes(build: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(build, "write_index", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(build, "execute_chapters", _no_execution)
    with pytest.raises(_Stop):
        build.main(["--profile", "quick"])
    assert calls == [{"notebooks_dir": build.NOTEBOOKS_DIR}]
    calls.clear()
    with pytest.raises(_Stop):
        build.main(["--profile", "quick", "--no-render"])
    assert calls == []  # --no-render: the index is left alone


def test_a_build_stops_naming_an_item_without_a_home(build: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    notebooks = copy_sources(tmp_path)
    chapter = notebooks / "03_computer_vision.md"
    chapter.write_text(remove_block(chapter.read_text(encoding="utf-8"), "prop-1-3-12"), encoding="utf-8")
    monkeypatch.setattr(build, "execute_chapters", _no_execution)
    assert build.main(["--notebooks-dir", str(notebooks)]) == 1  # before any chapter is executed
    assert re.search(r"error: .*no home in the chapters .*for Proposition 1\.3\.12", capsys.readouterr().err, re.S)

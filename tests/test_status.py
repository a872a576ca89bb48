"""The status page, the chapters' badges and the reproduction's appendix (book/status.py), on a fake chapter
in a fake repository (tmp_path) and on the committed book; no Sphinx and no browser run here."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book"))
import execution  # noqa: E402
import status  # noqa: E402
from sources import BuildError, read_source  # noqa: E402

_spec = importlib.util.spec_from_file_location("browser_check", ROOT / "book" / "browser_check.py")
browser_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browser_check)

SOURCE = ("---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n---\n\n"
          "# A chapter\n\n```{code-cell} ipython3\nx = 1\n```\n")
TABLE = ("| environment | |\n|---|---|\n| profile | `quick` |\n| git commit | `abc1234` |\n"
         "| date | `2026-11-30` |")
PAGE = ('<html><body><article class="bd-article"><section><h1>A chapter</h1><p>text</p></section>'
        '</article></body></html>')


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with one executed chapter 01_a that read one checkpoint, recorded as the build does."""
    for folder in ("notebooks", "lib", "checkpoints", "book/chapters"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "notebooks" / "01_a.md").write_text(SOURCE)
    (tmp_path / "lib" / "m.py").write_text("X = 1\n")
    (tmp_path / "checkpoints" / "m.pt").write_bytes(b"weights")
    monkeypatch.setattr(execution, "REPO_ROOT", tmp_path)
    write_executed(tmp_path, parts=True)
    return tmp_path


def write_executed(repo: Path, *, parts: bool) -> Path:
    """book/chapters/01_a.ipynb as execute_chapter leaves it (``parts``: with its inputs part by part and its
    time, as from now on; without: as the committed chapters, with only the environment table's date)."""
    nb = read_source(repo / "notebooks" / "01_a.md")
    nb.cells[-1].outputs = [nbformat.v4.new_output("execute_result", {"text/markdown": TABLE}, execution_count=1)]
    source, parameters = (repo / "notebooks" / "01_a.md").read_bytes(), {"profile": "quick"}
    companion = {"input_hash": execution.input_hash(source, parameters, repo / "lib"), "source": "notebooks/01_a.md",
                 "parameters": parameters, "reads": {"checkpoints/m.pt": hashlib.sha256(b"weights").hexdigest()}}
    if parts:
        companion |= {"inputs": execution.input_parts(source, repo / "lib"), "executed": "2026-12-01T10:00:00+00:00",
                      "seconds": 754.0}
    nb.metadata["companion"] = companion
    out = repo / "book" / "chapters" / "01_a.ipynb"
    nbformat.write(nb, out)
    return out


def state(repo: Path) -> status.Status:
    return status.chapter_status(repo / "book" / "chapters" / "01_a.ipynb", repo / "notebooks", repo / "lib")


def test_an_untouched_chapter_is_up_to_date_with_what_it_recorded(repo: Path) -> None:
    s = state(repo)
    assert (s.verdict, s.fresh, s.reasons) == ("up to date", True, ())
    assert (s.title, s.executed, s.profile, s.seconds, s.commit) == ("A chapter", "2026-12-01T10:00:00+00:00",
                                                                     "quick", 754.0, "abc1234")
    assert s.reads == {"checkpoints/m.pt": (hashlib.sha256(b"weights").hexdigest(), "same")}


@pytest.mark.parametrize("parts", [True, False])
def test_a_changed_source_makes_it_stale(repo: Path, parts: bool) -> None:
    write_executed(repo, parts=parts)
    (repo / "notebooks" / "01_a.md").write_text(SOURCE.replace("x = 1", "x = 2"))
    assert state(repo).verdict == "stale: source changed"


@pytest.mark.parametrize("parts, reason", [(True, "library changed"),
                                           (False, "library or package versions changed")])
def test_a_changed_library_makes_it_stale(repo: Path, parts: bool, reason: str) -> None:
    write_executed(repo, parts=parts)
    (repo / "lib" / "m.py").write_text("X = 2\n")
    assert state(repo).verdict == f"stale: {reason}"
    (repo / "lib" / "m.py").write_text("X = 1\n")
    (repo / "lib" / "n.py").write_text("")  # a new module counts too
    assert state(repo).verdict == f"stale: {reason}"


def test_another_torch_makes_it_stale_naming_both_versions(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    was = execution._version("torch")
    monkeypatch.setattr(execution, "_version", lambda name: "9.9" if name == "torch" else was)
    assert state(repo).verdict.startswith(f"stale: torch {was} → 9.9")


@pytest.mark.parametrize("change, reason", [("retrain", "changed"), ("delete", "missing")])
def test_a_changed_or_missing_checkpoint_makes_it_stale(repo: Path, change: str, reason: str) -> None:
    ckpt = repo / "checkpoints" / "m.pt"
    ckpt.write_bytes(b"retrained") if change == "retrain" else ckpt.unlink()
    s = state(repo)
    assert s.verdict == f"stale: checkpoint checkpoints/m.pt {reason}"
    assert s.reads["checkpoints/m.pt"][1] == reason


def test_the_status_is_the_build_s_own_test(repo: Path) -> None:
    notebook = repo / "book" / "chapters" / "01_a.ipynb"
    for edit in (lambda: None, lambda: (repo / "checkpoints" / "m.pt").write_bytes(b"x"),
                 lambda: (repo / "notebooks" / "01_a.md").write_text(SOURCE + "\nmore\n")):
        edit()
        digest = execution.input_hash((repo / "notebooks" / "01_a.md").read_bytes(), {"profile": "quick"}, repo / "lib")
        assert state(repo).fresh == execution.up_to_date(notebook, digest)


def test_an_old_notebook_takes_its_date_from_the_environment_table(repo: Path) -> None:
    write_executed(repo, parts=False)
    s = state(repo)
    assert (s.executed, s.seconds, s.verdict) == ("2026-11-30", None, "up to date")
    assert "| 2026-11-30 | quick | not recorded |" in status.status_page([s])


def test_a_notebook_the_build_did_not_execute_is_refused_naming_it(repo: Path) -> None:
    bare = repo / "book" / "chapters" / "02_b.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), bare)
    with pytest.raises(BuildError, match=r"02_b\.ipynb.*input_hash"):
        status.chapter_status(bare, repo / "notebooks", repo / "lib")


def test_the_page_has_a_row_and_a_section_per_chapter(repo: Path) -> None:
    fresh = state(repo)
    (repo / "checkpoints" / "m.pt").write_bytes(b"retrained")
    page = status.status_page([fresh, state(repo)])
    rows = [line for line in page.splitlines() if line.startswith("| {doc}")]
    assert rows[0] == ("| {doc}`1 · A chapter <chapters/01_a>` | 2026-12-01 | quick | 12.6 min | "
                       f"`{fresh.input_hash[:12]}` | {{ref}}`1 <status-01>` | up to date |")
    assert rows[1].endswith("| stale: checkpoint checkpoints/m.pt changed |")
    assert "1 of the 2 chapters are stale" in page
    assert page.count("(status-01)=\n### 1 · A chapter") == 2 and f"`{fresh.input_hash}`" in page
    assert f"| `checkpoints/m.pt` | `{hashlib.sha256(b'weights').hexdigest()}` | changed |" in page


def test_the_badge_links_to_the_chapter_s_row_once(repo: Path, tmp_path: Path) -> None:
    s = state(repo)
    (site := tmp_path / "site" / "chapters").mkdir(parents=True)
    (site / "01_a.html").write_text(PAGE)
    status.install_badges(site.parent, [s])
    status.install_badges(site.parent, [s])  # a second render replaces the badge
    page = (site / "01_a.html").read_text()
    assert page.count('class="chapter-status') == 2  # the paragraph and its link
    assert '<h1>A chapter</h1><!-- chapter-status --><p class="chapter-status">' in page
    assert 'href="../status.html#status-01">executed 2026-12-01 · quick · up to date</a>' in page
    assert browser_check.badge_problems(['../status.html#status-01'], "01_a") == []
    (repo / "notebooks" / "01_a.md").write_text(SOURCE + "\nmore\n")
    stale = status.badge(state(repo))
    assert '<p class="chapter-status stale">' in stale and "· stale</a>" in stale
    with pytest.raises(BuildError, match="02_b.html was not rendered"):
        status.install_badges(site.parent, [dataclasses.replace(s, stem="02_b")])


def test_badge_problems() -> None:
    assert "2 status badges" in browser_check.badge_problems(["a", "b"], "01_a")[0]
    assert "0 status badges" in browser_check.badge_problems([], "01_a")[0]
    assert "not '../status.html#status-01'" in browser_check.badge_problems(["/status.html#status-01"], "01_a")[0]
    assert browser_check.badge_problems(["../status.html#status-02"], "01_a")


def test_the_committed_chapters_stand_as_the_build_sees_them() -> None:
    for notebook in sorted((ROOT / "book" / "chapters").glob("*.ipynb")):
        s = status.chapter_status(notebook)
        source = ROOT / "notebooks" / f"{notebook.stem}.md"
        digest = execution.input_hash(source.read_bytes(), {"profile": "full"}, ROOT / "thesis_lib")
        assert s.fresh == execution.up_to_date(notebook, digest), notebook.name
        assert s.profile == "full" and len(s.executed) >= 10 and s.executed.startswith("20")


# --- The reproduction's appendix ------------------------------------------------------------------------

def fake_runs(tmp_path: Path, names: list[str]) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "REPORT.md").write_text("# Reproduction report\n\n- date: x\n\n## Chapters executed against these "
                                    "checkpoints\n\nold\n")
    (runs / "CHAPTERS.md").write_text("## Chapters executed against these checkpoints\n\n### Chapter 04\n\nnew\n")
    results = {name: {"0": 1.0 + i, "1": 2.0 + i, "2": 4.0 + i} for i, name in enumerate(names)}
    (runs / "seeds.json").write_text(json.dumps({"seeds": ["0", "1", "2"], "results": results}))
    return runs


def test_the_appendix_takes_the_chapters_section_from_chapters_md(tmp_path: Path) -> None:
    names = [name for _, group, _ in status.SEED_GROUPS for name in group]
    page = status.report_page(fake_runs(tmp_path, names))
    assert "new" in page and "old" not in page
    assert "\n## Reproduction report\n" in page and "\n### Chapters executed" in page and "\n#### Chapter 04" in page
    assert page.count("\n# ") == 1  # the page's own title only
    assert f"| `{names[0]}` | 2.33333 ± 1.52753 | 1.00000 | 4.00000 | 1.00000 | 2.00000 | 4.00000 |" in page


def test_the_appendix_refuses_a_result_it_cannot_place_and_a_missing_report(tmp_path: Path) -> None:
    names = [name for _, group, _ in status.SEED_GROUPS for name in group]
    with pytest.raises(BuildError, match=r"in no group \['new_result'\]"):
        status.report_page(fake_runs(tmp_path, [*names, "new_result"]))
    (tmp_path / "runs" / "REPORT.md").unlink()
    with pytest.raises(BuildError, match="no reproduction report at .*REPORT.md"):
        status.report_page(tmp_path / "runs")


def test_the_appendix_shows_all_46_committed_results_with_each_seed() -> None:
    raw = json.loads((ROOT / "reproduction" / "runs" / "seeds.json").read_text())["results"]
    page = status.report_page()
    over_seeds = page.split("\n## Reproduction report\n")[0]
    rows = {line.split("`")[1]: line for line in over_seeds.splitlines() if line.startswith("| `")}
    assert len(raw) == 46 and set(rows) == set(raw)
    values = list(raw["vae_nll_long_test_nll"].values())
    cells = [c.strip() for c in rows["vae_nll_long_test_nll"].split("|")[2:-1]]
    assert cells == [f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}", f"{min(values):.2f}",
                     f"{max(values):.2f}", *(f"{v:.2f}" for v in values)]
    assert "Importance-sampled -log p(x)" in page and "#### Results quoted in the prose" in page


def test_write_pages_writes_both_pages_atomically_and_only_changes(tmp_path: Path) -> None:
    notebooks = sorted((ROOT / "book" / "chapters").glob("*.ipynb"))
    statuses = status.write_pages(notebooks, book_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reproduction_report.md", "status.md"]
    assert [s.stem for s in statuses] == [p.stem for p in notebooks]
    before = (tmp_path / "status.md").stat().st_mtime_ns
    status.write_pages(notebooks, book_dir=tmp_path)
    assert (tmp_path / "status.md").stat().st_mtime_ns == before


def test_the_pages_are_in_the_table_of_contents_after_the_index() -> None:
    sys.path.insert(0, str(ROOT / "book"))
    import website

    files = website.toc_files(ROOT / "book")
    assert files.index("thesis_index") + 1 == files.index("status")
    assert "reproduction_report" in files and set(status.GENERATED) <= set(files)

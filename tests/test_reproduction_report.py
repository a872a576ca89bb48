"""book/reproduction.py: the chapters section of a reproduction's report (numbers nbval compares and glued
results, committed beside reproduced; failed checks named) and its refusals."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book"))  # the book's scripts import the modules beside them
import reproduction  # noqa: E402


def _nb(mse: str, auc: str, glued_value: str) -> nbformat.NotebookNode:
    checked = new_code_cell("print(results)", metadata={"tags": ["nbval-check-output"]}, outputs=[
        new_output("stream", name="stdout", text=f"test MSE {mse}\nAUC {auc} for digit 0\n")])
    unchecked = new_code_cell("print(time)", outputs=[new_output("stream", name="stdout", text="12.3 s\n")])
    asserts = new_code_cell("assert mse < 1", metadata={"tags": ["hide-input"]})
    prefix = "application/papermill.record/"  # as myst-nb's glue stores a value
    glue = new_code_cell("glue('ch4_mse', mse)", outputs=[new_output(
        "display_data", data={prefix + "text/plain": glued_value},
        metadata={"scrapbook": {"mime_prefix": prefix, "name": "ch4_mse"}})])
    return new_notebook(cells=[checked, unchecked, asserts, glue])


def test_checked_lines_and_glued_values_are_read_from_the_outputs():
    nb = _nb("0.0123", "0.91", "0.0123")
    assert reproduction.checked_lines(nb) == [("print(results)", "test MSE 0.0123"),
                                              ("print(results)", "AUC 0.91 for digit 0")]
    assert reproduction.glued(nb) == {"ch4_mse": "0.0123"}


def test_numbers_are_compared_in_place():
    old = reproduction.checked_lines(_nb("0.0123", "0.91", ""))
    new = reproduction.checked_lines(_nb("0.0125", "0.91", ""))
    cmp = reproduction.compare_numbers(old, new)
    assert cmp["numbers"] == 3 and cmp["same"] == 2  # 0.0123 moved; 0.91 and the digit 0 did not
    assert cmp["largest_relative"] == pytest.approx(0.0002 / 0.0123)
    assert cmp["differing"] == [{"cell": "print(results)", "committed": "test MSE 0.0123",
                                 "reproduced": "test MSE 0.0125"}]
    assert reproduction.compare_numbers(old, old)["differing"] == []
    shorter = reproduction.compare_numbers(old, new[:1])  # a line missing is a difference too
    assert shorter["differing"][-1] == {"cell": "print(results)", "committed": "AUC 0.91 for digit 0",
                                        "reproduced": ""}


def test_the_report_sets_each_seed_beside_the_committed_book_and_names_a_failed_check(tmp_path):
    committed, src = tmp_path / "book", tmp_path / "04_autoencoders.md"
    committed.mkdir()
    nbformat.write(_nb("0.0123", "0.91", "0.0123"), committed / "04_autoencoders.ipynb")
    nbformat.write(_nb("0.0125", "0.91", "0.0125"), tmp_path / "seed0.ipynb")
    results = {(0, "04"): tmp_path / "seed0.ipynb",
               (1, "04"): "chapter 04 failed in cell In [7] (notebooks/04_autoencoders.md line 80: 'assert'): ..."}
    text = reproduction.report(results, {"04": src}, "full", committed_dir=committed)
    assert text.startswith(reproduction.SECTION)
    assert "### Chapter 04, seed 0: every check passed" in text and "All 1 cells with checks ran" in text
    assert "Numbers in the outputs that nbval compares: 3, of which 2 printed exactly" in text
    assert "| `print(results)` | `test MSE 0.0123` | `test MSE 0.0125` |" in text
    assert "### Chapter 04, seed 1: a check failed" in text and "line 80" in text
    assert "| ch4_mse | 0.0123 | 0.0125 |" in text


def test_the_chapters_section_replaces_the_old_one():
    first = reproduction.replace_section("# Reproduction report\n\n| task |\n", reproduction.SECTION + "\n\nold\n")
    again = reproduction.replace_section(first, reproduction.SECTION + "\n\nnew\n")
    assert again == "# Reproduction report\n\n| task |\n\n" + reproduction.SECTION + "\n\nnew\n"


def test_checkpoint_folders_follow_the_records(tmp_path):
    summary = {"out": str(tmp_path), "seeds": [0, 1], "tasks": {
        "a-seed0": {"seed": 0, "checkpoint": "/repo/checkpoints/a.pt"}, "a-seed1": {"seed": 1, "checkpoint": None}}}
    assert reproduction.checkpoint_dirs(summary) == {0: Path("/repo/checkpoints"), 1: tmp_path / "seed1"}


def test_each_seed_runs_its_chapters_on_its_own_checkpoints_with_its_figures_beside_them(tmp_path, monkeypatch):
    calls = []
    for key in reproduction.MALLOC_ENV:  # execute() sets them for the kernels; restored after the test
        monkeypatch.setenv(key, os.environ.get(key, ""))
    monkeypatch.setattr(reproduction, "ensure_kernel", lambda: None)
    monkeypatch.setattr(reproduction, "execute_chapter",
                        lambda number, source, output, parameters, digest: calls.append((number, output, parameters)))
    summary = {"out": str(tmp_path), "seeds": [0, 2], "profile": "full", "tasks": {}}
    chapters = {"04": ROOT / "notebooks" / "04_autoencoders.md"}
    results = reproduction.execute(tmp_path, summary, chapters)
    assert results == {(s, "04"): tmp_path / f"seed{s}" / "chapters" / "04_autoencoders.ipynb" for s in (0, 2)}
    assert [c[2] for c in calls] == [{"profile": "full", "seed": s, "checkpoint_dir": str(tmp_path / f"seed{s}"),
                                      "figures_dir": str(tmp_path / f"seed{s}" / "figures")} for s in (0, 2)]


def test_a_folder_without_a_summary_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        reproduction.main(["--runs", str(tmp_path)])
    assert ("--runs must be a folder that python -m thesis_lib.reproduction.reproduce wrote; "
            f"no {tmp_path / 'summary.json'}") \
        in capsys.readouterr().err


def test_the_script_leaves_the_runs_seeds_file_as_the_reproduction_wrote_it(tmp_path, monkeypatch):
    """``DIR/seeds.json`` is the reproduction's product (``thesis_lib.reproduction.reproduce``): executing the
    chapters writes their comparison with the book, nothing the chapters read."""
    summary = {"profile": "full", "seeds": [0], "out": str(tmp_path), "tasks": {}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    product = json.dumps({"profile": "full", "seeds": ["0"], "results": {"fc_test_mse": {"0": 0.03}}})
    (tmp_path / "seeds.json").write_text(product)
    monkeypatch.setattr(reproduction, "execute", lambda runs, summary, chapters: {(0, "04"): "chapter 04 failed"})
    assert reproduction.main(["--runs", str(tmp_path), "--chapter", "04"]) == 1
    assert (tmp_path / "seeds.json").read_text() == product
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CHAPTERS.md", "REPORT.md", "seeds.json", "summary.json"]
    assert "### Chapter 04, seed 0: a check failed" in (tmp_path / "CHAPTERS.md").read_text()

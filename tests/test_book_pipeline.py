"""Tests of the book pipeline (book/build.py, book/nbval_sanitize.cfg) on tiny synthetic chapters.

No real chapter is executed. Two tests start a kernel (a three-cell chapter through papermill) and
two run nbval in a subprocess; everything else is in-process.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "book" / "build.py"
sys.path.insert(0, str(BUILD.parent))  # build.py and the modules beside it: sources, execution, website
import execution  # noqa: E402
import sources  # noqa: E402
import website  # noqa: E402
SANITIZE = ROOT / "book" / "nbval_sanitize.cfg"


@pytest.fixture(scope="module")
def build() -> Any:
    spec = importlib.util.spec_from_file_location("book_build", BUILD)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


def chapter_text(body: str = "x = 6 * 7\nx") -> str:
    return HEADER + f"""
# A tiny chapter

```{{code-cell}} ipython3
:tags: [parameters, remove-cell]

profile = "full"
seed = 0
```

```{{prf:definition}} 1.1.1 (activation function)
:label: def-1-1-1
:nonumber:

A continuous non-constant function.
```

```{{code-cell}} ipython3
{body}
```
"""


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BUILD), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


# ------------------------------------------------------------------------------------------------
# command line and parameters
# ------------------------------------------------------------------------------------------------

def test_help_documents_the_options() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for option in ("--chapter", "--profile", "-p NAME VALUE", "--output-dir", "--force", "--no-render",
                   "--check-sources"):
        assert option in done.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "bogus", "1"], r"unknown parameter 'bogus': allowed are profile, seed, device, data_dir, "
                               r"retrain, figures_dir"),
        (["--profile", "fast"], r"profile must be one of quick, full; got 'fast'"),
        (["-p", "profile", "medium"], r"profile must be one of quick, full; got 'medium'"),
        (["-p", "seed", "-1"], r"seed must be a non-negative integer; got -1"),
        (["-p", "retrain", "maybe"], r"retrain must be True or False; got 'maybe'"),
        (["--profile", "quick", "-p", "profile", "full"], r"--profile 'quick' contradicts -p profile 'full'"),
        (["--chapter", "99"], r"--chapter '99': no such chapter"),
    ],
)
def test_bad_parameters_exit_2_before_any_work(tmp_path: Path, args: list[str], message: str) -> None:
    src = tmp_path / "notebooks"
    src.mkdir()
    (src / "01_tiny.md").write_text(chapter_text())
    out = tmp_path / "out"
    done = run_cli(*args, "--notebooks-dir", str(src), "--output-dir", str(out), "--no-render")
    assert done.returncode == 2, done.stderr
    assert re.search(message, done.stderr), done.stderr
    assert not out.exists()  # nothing was executed or written


def test_parse_value_follows_papermill(build: Any) -> None:
    assert build.parse_value("None") is None
    assert build.parse_value("null") is None
    assert build.parse_value("True") is True and build.parse_value("false") is False
    assert build.parse_value("3") == 3 and build.parse_value("0.5") == 0.5
    assert build.parse_value("quick") == "quick"
    assert build.parse_value("[1, 2]") == [1, 2]


def test_validate_parameters_merges_defaults_and_checks_kinds(build: Any) -> None:
    assert build.validate_parameters({}) == {"profile": "full"}
    assert build.validate_parameters({"seed": 3, "profile": "quick"}) == {"profile": "quick", "seed": 3}
    for bad, message in [({"device": "tpu"}, r"device must be one of auto, cpu, cuda; got 'tpu'"),
                         ({"seed": True}, r"seed must be a non-negative integer; got True"),
                         ({"figures_dir": 3}, r"figures_dir must be a path or None; got 3"),
                         ({"epochs": 3}, r"unknown parameter 'epochs'")]:
        with pytest.raises(build.UsageError, match=message):
            build.validate_parameters(bad)


# ------------------------------------------------------------------------------------------------
# the cache key
# ------------------------------------------------------------------------------------------------

def test_input_hash_changes_exactly_when_an_input_changes(build: Any, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.py").write_text("A = 1\n")
    (lib / "b.py").write_text("B = 2\n")
    source = chapter_text().encode()
    params = {"profile": "quick", "seed": 0}
    base = execution.input_hash(source, params, lib)
    assert re.fullmatch(r"[0-9a-f]{64}", base)

    # not otherwise: the same inputs, parameters in another order, files that are not modules
    assert execution.input_hash(source, dict(reversed(list(params.items()))), lib) == base
    (lib / "notes.txt").write_text("not a module\n")
    (lib / "__pycache__").mkdir()
    (lib / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert execution.input_hash(source, params, lib) == base

    # the source, a parameter, a library file's content, a new file, a renamed file
    assert execution.input_hash(source + b"\n", params, lib) != base
    assert execution.input_hash(source, {**params, "seed": 1}, lib) != base
    assert execution.input_hash(source, {"profile": "quick"}, lib) != base
    (lib / "a.py").write_text("A = 2\n")
    assert execution.input_hash(source, params, lib) != base
    (lib / "a.py").write_text("A = 1\n")
    assert execution.input_hash(source, params, lib) == base
    (lib / "c.py").write_text("")
    assert execution.input_hash(source, params, lib) != base
    (lib / "c.py").unlink()
    (lib / "b.py").rename(lib / "b2.py")
    assert execution.input_hash(source, params, lib) != base


def test_input_hash_frames_its_parts(build: Any, tmp_path: Path) -> None:
    """Moving bytes from the end of the source into a library file must change the hash."""
    lib1, lib2 = tmp_path / "l1", tmp_path / "l2"
    lib1.mkdir(), lib2.mkdir()
    (lib1 / "a.py").write_text("xy")
    (lib2 / "a.py").write_text("y")
    assert execution.input_hash(b"s", {}, lib1) != execution.input_hash(b"sx", {}, lib2)


def test_up_to_date_chapters_are_skipped_and_others_executed(build: Any, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture) -> None:
    src, out = tmp_path / "notebooks", tmp_path / "out"
    src.mkdir()
    (src / "01_one.md").write_text(chapter_text())
    (src / "02_two.md").write_text(chapter_text("y = 1"))
    executed: list[str] = []

    def fake_execute(number: str, source: Path, output: Path, parameters: dict, digest: str) -> None:
        executed.append(number)
        nb = sources.read_source(source)
        nb.metadata["companion"] = {"input_hash": digest}
        execution.write_atomic(nb, output)

    monkeypatch.setattr(build, "execute_chapter", fake_execute)
    monkeypatch.setattr(build, "ensure_kernel", lambda: None)
    argv = ["--notebooks-dir", str(src), "--output-dir", str(out), "--no-render", "--profile", "quick"]
    assert build.main(argv) == 0
    assert executed == ["01", "02"]
    assert build.main(argv) == 0
    assert executed == ["01", "02"]  # both up to date
    assert "chapter 01 01_one: up to date" in capsys.readouterr().out
    (src / "02_two.md").write_text(chapter_text("y = 2"))
    assert build.main(argv) == 0
    assert executed == ["01", "02", "02"]
    assert build.main([*argv, "-p", "seed", "4"]) == 0  # a new parameter: both again
    assert executed == ["01", "02", "02", "01", "02"]
    assert build.main([*argv, "-p", "seed", "4", "--force", "--chapter", "1"]) == 0
    assert executed[-1] == "01" and len(executed) == 6


def test_malformed_thesis_blocks_stop_the_build_before_execution(build: Any, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "notebooks"
    src.mkdir()
    (src / "01_one.md").write_text(chapter_text().replace(":nonumber:\n", ""))
    monkeypatch.setattr(build, "execute_chapter", lambda *a: pytest.fail("must not execute"))
    assert build.main(["--notebooks-dir", str(src), "--output-dir", str(tmp_path / "o"), "--no-render"]) == 1
    assert "01_one.md:" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# thesis blocks
# ------------------------------------------------------------------------------------------------

def block(kind: str, title: str, *options: str) -> str:
    return "\n".join([f"```{{prf:{kind}}} {title}", *options, "", "Text.", "```"])


@pytest.mark.parametrize(
    "text",
    [
        block("definition", "1.1.4 (φ-layer)", ":label: def-1-1-4", ":nonumber:"),
        block("proposition", "1.3.10 (convolution)", ":nonumber:", ":label: prop-1-3-10"),
        block("algorithm", "1 (ADAM optimizer)", ":label: alg-1", ":nonumber:"),
        block("definition", "(evidence lower bound)", ":label: def-elbo", ":nonumber:"),
        block("remark", "3.1.4", ":label: rem-3-1-4", ":nonumber:").replace("```", ":::"),
        "```{prf:proof}\nNo label needed.\n```",
    ],
)
def test_lint_accepts_the_convention(build: Any, text: str) -> None:
    assert sources.lint_proof_blocks(text) == []


@pytest.mark.parametrize(
    "text, message",
    [
        (block("definition", "1.1.4 (φ-layer)", ":label: def-1-1-4"), "needs :nonumber:"),
        (block("definition", "1.1.4 (φ-layer)", ":nonumber:"), "needs a :label: such as def-1-1-4"),
        (block("theorem", "1.2.5", ":label: thm-1-2-6", ":nonumber:"), "title must start with 1.2.6"),
        (block("proposition", "1.3.1", ":label: prop-1-3-10", ":nonumber:"), "title must start with 1.3.10"),
        (block("lemma", "2.1.3", ":label: def-2-1-3", ":nonumber:"), "must be lem-<number with dashes>"),
        (block("definition", "3.2.1 (ELBO)", ":label: def-elbo", ":nonumber:"), "has no number but the title"),
    ],
)
def test_lint_names_each_violation(build: Any, text: str, message: str) -> None:
    problems = sources.lint_proof_blocks(HEADER + text, "03_x.md")
    assert len(problems) == 1 and message in problems[0]
    assert problems[0].startswith("03_x.md:11: ")  # the header has 10 lines


# ------------------------------------------------------------------------------------------------
# executed notebooks: cleaning, atomic writes, --check-sources
# ------------------------------------------------------------------------------------------------

def fake_executed(build: Any, source_nb: Any) -> Any:
    """What papermill makes of a source: an injected cell after the parameters, outputs, timings."""
    nb = nbformat.from_dict(json.loads(nbformat.writes(source_nb)))
    injected = nbformat.v4.new_code_cell("# Parameters\nprofile = \"quick\"\n")
    injected.metadata["tags"] = ["injected-parameters"]
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(index + 1, injected)
    count = 0
    for cell in nb.cells:
        cell.metadata["papermill"] = {"start_time": "2026-01-01T00:00:00", "duration": 0.1, "status": "completed"}
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count
            cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00"}
            cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "42"}, execution_count=count)]
    nb.metadata["papermill"] = {"parameters": {"profile": "quick"}, "start_time": "x", "end_time": "y",
                                "duration": 1.0, "input_path": "/tmp/a.ipynb", "output_path": "/tmp/b.ipynb"}
    return nb


def test_clean_executed_strips_volatile_metadata_and_hides_the_injected_cell(build: Any, tmp_path: Path) -> None:
    (tmp_path / "01_a.md").write_text(chapter_text())
    source_nb = sources.read_source(tmp_path / "01_a.md")
    nb = execution.clean_executed(fake_executed(build, source_nb), companion={"input_hash": "abc"})
    assert nb.metadata["papermill"] == {"parameters": {"profile": "quick"}}
    assert nb.metadata["companion"] == {"input_hash": "abc"}
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"]
    assert injected[0].id == "injected-parameters"
    for cell in nb.cells:
        assert "papermill" not in cell.metadata and "execution" not in cell.metadata
    assert [c.execution_count for c in nb.cells if c.cell_type == "code"] == [1, 2, 3]
    nbformat.validate(nb)
    # ids come from content: converting the source again gives the same ids
    again = sources.read_source(tmp_path / "01_a.md")
    assert [c.id for c in again.cells] == [c.id for c in source_nb.cells]
    assert [c.id for c in nb.cells if c.id != "injected-parameters"] == [c.id for c in source_nb.cells]


def test_write_atomic_keeps_the_old_file_when_writing_fails(build: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "01_a.ipynb"
    old = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("old")])
    execution.write_atomic(old, target)
    before = target.read_bytes()

    def broken_write(nb: Any, f: Any) -> None:
        f.write('{"half": ')
        raise RuntimeError("disk full")

    monkeypatch.setattr(nbformat, "write", broken_write)
    with pytest.raises(RuntimeError, match="disk full"):
        execution.write_atomic(nbformat.v4.new_notebook(), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["01_a.ipynb"]  # no temporary file left


def test_check_sources_detects_an_edited_cell(build: Any, tmp_path: Path) -> None:
    src, out = tmp_path / "notebooks", tmp_path / "chapters"
    src.mkdir(), out.mkdir()
    (src / "01_a.md").write_text(chapter_text())
    (src / "02_b.md").write_text(chapter_text("y = 1"))
    for name in ("01_a", "02_b"):
        executed = fake_executed(build, sources.read_source(src / f"{name}.md"))
        nbformat.write(execution.clean_executed(executed, companion={}), out / f"{name}.ipynb")
    chapters = sources.discover_chapters(src)
    assert build.check_sources(chapters, out) == []

    (src / "02_b.md").write_text(chapter_text("y = 2"))  # a code cell edited after execution
    problems = build.check_sources(chapters, out)
    assert len(problems) == 1 and problems[0].startswith("chapter 02 (02_b.md)")
    assert "cell 4 (code, starting 'y = 2') differs in its source" in problems[0]

    (src / "02_b.md").write_text(chapter_text("y = 1").replace("# A tiny chapter", "# A tinier chapter"))
    assert "cell 1 (markdown" in build.check_sources(chapters, out)[0]
    (src / "02_b.md").write_text(chapter_text("y = 1") + "\nOne more paragraph.\n")
    assert "the source has 5 cells, the executed notebook 4" in build.check_sources(chapters, out)[0]

    # the command line names the chapter and fails; an orphan notebook is reported too
    (src / "02_b.md").write_text(chapter_text("y = 1"))
    (out / "03_gone.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    done = run_cli("--check-sources", "--notebooks-dir", str(src), "--output-dir", str(out))
    assert done.returncode == 1 and "chapter 03" in done.stderr and "has no source" in done.stderr
    (out / "03_gone.ipynb").unlink()
    done = run_cli("--check-sources", "--notebooks-dir", str(src), "--output-dir", str(out))
    assert done.returncode == 0, done.stderr


def test_compare_cells_sees_type_and_tag_changes(build: Any, tmp_path: Path) -> None:
    (tmp_path / "01_a.md").write_text(chapter_text())
    source_nb = sources.read_source(tmp_path / "01_a.md")
    executed = fake_executed(build, source_nb)
    assert sources.compare_cells(source_nb, executed) is None
    executed.cells[-1].metadata["tags"] = ["remove-input"]
    assert "differs in its tags" in sources.compare_cells(source_nb, executed)
    executed.cells[-1].metadata["tags"] = []
    executed.cells[-1].cell_type = "markdown"
    assert "differs in its cell type" in sources.compare_cells(source_nb, executed)


# ------------------------------------------------------------------------------------------------
# the rendered site
# ------------------------------------------------------------------------------------------------

def test_check_site_assets_rejects_external_and_missing_assets(build: Any, tmp_path: Path) -> None:
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "x.js").write_text("")
    (tmp_path / "_static" / "macros.html").write_text('<script src="{{ pathto(x) }}"></script>')
    (tmp_path / "chapters").mkdir()
    page = tmp_path / "chapters" / "01.html"
    page.write_text('<script src="../_static/x.js?v=1"></script><link rel="stylesheet" href="../_static/x.js">'
                    '<a href="https://example.org">a link is fine</a><script>var inline = 1;</script>')
    assert website.check_site_assets(tmp_path) == []
    page.write_text('<script src="https://cdn.example.org/mathjax.js"></script>'
                    '<link href="//fonts.example.org/a.css" rel="stylesheet"><script src="../missing.js"></script>')
    problems = website.check_site_assets(tmp_path)
    assert len(problems) == 3
    assert "needs the network: https://cdn.example.org/mathjax.js" in problems[0]
    assert "needs the network: //fonts.example.org/a.css" in problems[1]
    assert "missing file: ../missing.js" in problems[2]


def test_install_mathjax_copies_the_component_config_points_at(build: Any, tmp_path: Path) -> None:
    import runpy

    mathjax_path = runpy.run_path(str(ROOT / "book" / "conf.py"))["mathjax_path"]
    target = website.install_mathjax(tmp_path)
    # Sphinx puts "_static/" before a relative mathjax_path; from the site's root that must resolve
    assert (tmp_path / "_static" / mathjax_path).resolve() == (target / website.MATHJAX_ENTRY).resolve()
    assert (target / website.MATHJAX_ENTRY).stat().st_size > 100_000
    assert any((target / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert not (tmp_path / "_static" / "mathjax").exists()


# ------------------------------------------------------------------------------------------------
# real execution of a tiny chapter (starts a kernel)
# ------------------------------------------------------------------------------------------------

def test_execute_a_tiny_chapter_then_fail_it_without_losing_the_old_notebook(tmp_path: Path) -> None:
    src, out = tmp_path / "notebooks", tmp_path / "chapters"
    src.mkdir()
    (src / "01_tiny.md").write_text(chapter_text("print(seed * 10)"))
    args = ("--notebooks-dir", str(src), "--output-dir", str(out), "--no-render", "-p", "seed", "4")
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert "chapter 01 01_tiny: executed" in done.stdout
    target = out / "01_tiny.ipynb"
    nb = nbformat.read(target, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "seed = 4" in injected[0].source
    assert "remove-cell" in injected[0].metadata.tags
    assert nb.cells[-1].outputs[0]["text"] == "40\n"
    assert nb.metadata["papermill"] == {"parameters": {"profile": "full", "seed": 4}}
    assert "papermill" not in nb.cells[-1].metadata and nb.cells[-1].execution_count == 3
    companion = nb.metadata["companion"]  # what the status page reads: the inputs part by part, when, how long
    assert companion["inputs"] == execution.input_parts((src / "01_tiny.md").read_bytes(), ROOT / "thesis_lib")
    assert 0 < companion["seconds"] < 600 and companion["executed"].endswith("+00:00")
    good = target.read_bytes()

    (src / "01_tiny.md").write_text(chapter_text("y = 1\nprint(seed / 0)"))
    done = run_cli(*args)
    assert done.returncode == 1
    assert re.search(r"chapter 01 failed in cell In \[3\] \(.*01_tiny\.md line 29: 'y = 1'\): "
                     r"ZeroDivisionError: division by zero", done.stderr), done.stderr
    assert target.read_bytes() == good
    kept = nbformat.read(out / "_failed" / "01_tiny.ipynb", as_version=4)  # the failed run, for a look
    assert any(o.get("ename") == "ZeroDivisionError" for c in kept.cells for o in c.get("outputs", []))


def test_a_parameter_the_chapter_does_not_declare_is_refused_before_it_runs(tmp_path: Path) -> None:
    """papermill only warns about it, and the chapter would run as if it had not been given (the
    reproduction's chapters once loaded the committed checkpoints instead of the reproduced ones)."""
    src, out = tmp_path / "notebooks", tmp_path / "chapters"
    src.mkdir()
    (src / "01_tiny.md").write_text(chapter_text("print(seed)"))
    done = run_cli("--notebooks-dir", str(src), "--output-dir", str(out), "--no-render", "-p", "checkpoint_dir",
                   str(tmp_path))
    assert done.returncode == 1
    assert "chapter 01 declares no parameter 'checkpoint_dir' in its parameters cell (it has profile, seed)" \
        in done.stderr, done.stderr
    assert not (out / "01_tiny.ipynb").exists() and not (out / "_failed").exists()  # nothing ran


def test_every_chapter_declares_every_parameter_and_passes_it_to_start_chapter(build: Any) -> None:
    import ast

    from execution import declared_parameters
    from sources import read_source

    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.md")):
        nb = read_source(source)
        assert declared_parameters(nb) == set(build.PARAMETER_NAMES), source.name
        calls = [node for cell in nb.cells if cell.cell_type == "code"
                 for node in ast.walk(ast.parse("\n".join(ln for ln in cell.source.splitlines()
                                                          if not ln.startswith("%"))))
                 if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "start_chapter"]
        assert len(calls) == 1, source.name
        passed = {kw.arg: kw.value.id for kw in calls[0].keywords if isinstance(kw.value, ast.Name)}
        assert {n: passed.get(n) for n in build.PARAMETER_NAMES} == {n: n for n in build.PARAMETER_NAMES}, \
            source.name


# ------------------------------------------------------------------------------------------------
# nbval: a stored number is a regression test
# ------------------------------------------------------------------------------------------------

def nbval_notebook(stored: str, code: str = "print(f'{0.5:.3f}')") -> Any:
    cell = nbformat.v4.new_code_cell(code, execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored)]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def run_nbval(tmp_path: Path, names: list[str], *extra: str) -> dict[str, bool]:
    """Run ``pytest --nbval`` on notebooks in ``tmp_path``; return which passed, by file name."""
    report = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval", "--nbval-current-env", "-p", "no:cacheprovider",
                    f"--junitxml={report}", "--rootdir", str(tmp_path), *extra, *names],
                   cwd=tmp_path, capture_output=True, text=True, timeout=120)
    results: dict[str, bool] = {}
    for case in ET.parse(report).iter("testcase"):
        name = next(n for n in names if Path(n).stem in case.get("classname", "") + case.get("file", ""))
        failed = case.find("failure") is not None or case.find("error") is not None
        results[name] = results.get(name, True) and not failed
    return results


def test_nbval_fails_when_a_stored_number_changes(tmp_path: Path) -> None:
    nbformat.write(nbval_notebook("0.500\n"), tmp_path / "stored.ipynb")
    assert run_nbval(tmp_path, ["stored.ipynb"]) == {"stored.ipynb": True}
    edited = json.loads((tmp_path / "stored.ipynb").read_text())
    edited["cells"][0]["outputs"][0]["text"] = "0.501\n"
    (tmp_path / "stored.ipynb").write_text(json.dumps(edited))
    assert run_nbval(tmp_path, ["stored.ipynb"]) == {"stored.ipynb": False}


def test_sanitizer_masks_what_varies_but_not_the_numbers(tmp_path: Path) -> None:
    code = ("import datetime, os\n"
            "print(f'loss 0.500 at {datetime.date.today()} in {os.getpid() % 97 + 0.25} s, id {id(os):#x}, '\n"
            "      f'commit 1a2b3c4+dirty, data {os.getcwd()}')")
    volatile = "loss 0.500 at 2001-02-03 in 7.25 s, id 0x7f00dead, commit 9f8e7d6, data /some/where/else\n"
    nbformat.write(nbval_notebook(volatile, code), tmp_path / "volatile.ipynb")
    nbformat.write(nbval_notebook(volatile.replace("0.500", "0.501"), code), tmp_path / "changed.ipynb")
    results = run_nbval(tmp_path, ["volatile.ipynb", "changed.ipynb"], "--nbval-sanitize-with", str(SANITIZE))
    assert results == {"volatile.ipynb": True, "changed.ipynb": False}
    # without the sanitizer the volatile parts fail the comparison
    assert run_nbval(tmp_path, ["volatile.ipynb"]) == {"volatile.ipynb": False}


# ------------------------------------------------------------------------------------------------
# book/browser_check.py (the browser itself runs in `make test`, not here)
# ------------------------------------------------------------------------------------------------

def test_browser_check_picks_the_pages_and_refuses_a_missing_site(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("browser_check", ROOT / "book" / "browser_check.py")
    check = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(check)
    book_dir, site = tmp_path / "book", tmp_path / "site"
    (site / "chapters").mkdir(parents=True)
    (site / "api" / "m").mkdir(parents=True)
    book_dir.mkdir()
    (book_dir / "intro.md").write_text("# I\n\n```{toctree}\n:hidden:\n\nchapters/02_b\nchapters/01_a\n```\n\n"
                                      "```{toctree}\n:caption: About\n\nbenchmarks\n```\n")
    for name in ("intro.html", "search.html", "chapters/02_b.html", "chapters/01_a.html", "api/index.html",
                 "api/m/index.html"):
        (site / name).write_text("<html></html>")
    # benchmarks.html is missing: it is listed all the same, so that the check fails on it
    assert [p.relative_to(site).as_posix() for p in check.pages_to_check(site, book_dir)] == [
        "intro.html", "chapters/02_b.html", "chapters/01_a.html", "benchmarks.html", "api/index.html",
        "api/m/index.html"]
    assert check.main([str(tmp_path / "nowhere")]) == 2
    assert check.code_width_problems([]) == []
    problem, = check.code_width_problems([{"part": "input", "scrollWidth": 700, "clientWidth": 650,
                                            "line": "x = " + "1" * 100}])
    assert "code cut off (input, 700 px of content in a 650 px box)" in problem and "x = 111" in problem


# ------------------------------------------------------------------------------------------------
# The cache knows what a chapter read
# ------------------------------------------------------------------------------------------------

def test_input_hash_covers_the_versions_of_torch_and_the_library(monkeypatch, tmp_path: Path) -> None:
    base = execution.input_hash(b"s", {}, tmp_path)
    monkeypatch.setattr(execution, "_version", lambda name: "0.0" if name == "torch" else "x")
    assert execution.input_hash(b"s", {}, tmp_path) != base


def test_a_changed_file_that_a_chapter_read_makes_it_stale(monkeypatch, tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints" / "m.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"weights")
    log = tmp_path / "reads.txt"
    log.write_text(f"{ckpt}\n{ckpt}\n{tmp_path / 'gone.json'}\n")
    monkeypatch.setattr(execution, "REPO_ROOT", tmp_path)
    reads = execution.files_read(log)
    assert list(reads) == ["checkpoints/m.pt"]  # once, relative to the repository; a missing file left out
    nb = nbformat.v4.new_notebook()
    nb.metadata["companion"] = {"input_hash": "abc", "reads": reads}
    out = tmp_path / "01_a.ipynb"
    nbformat.write(nb, out)
    assert execution.up_to_date(out, "abc") and not execution.up_to_date(out, "abd")
    ckpt.write_bytes(b"weights, retrained")
    assert not execution.up_to_date(out, "abc")
    ckpt.unlink()
    assert not execution.up_to_date(out, "abc")


@pytest.mark.parametrize("chapter, checkpoint", [("04_autoencoders", "ae_thesis.pt"),
                                                 ("05_variational_autoencoders", "vae_nll.pt")])
def test_replacing_a_committed_checkpoint_makes_its_chapter_stale(monkeypatch, tmp_path: Path, chapter: str,
                                                                  checkpoint: str) -> None:
    """The committed chapters record what they read; a copy of the repository's inputs with one
    checkpoint replaced makes the chapter out of date, and nothing else does."""
    executed = ROOT / "book" / "chapters" / f"{chapter}.ipynb"
    companion = json.loads(executed.read_text())["metadata"]["companion"]
    assert f"checkpoints/{checkpoint}" in companion["reads"]
    for shown in companion["reads"]:
        (tmp_path / shown).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / shown).write_bytes((ROOT / shown).read_bytes())
    monkeypatch.setattr(execution, "REPO_ROOT", tmp_path)
    assert execution.up_to_date(executed, companion["input_hash"])
    (tmp_path / "checkpoints" / checkpoint).write_bytes((ROOT / "checkpoints" / "vae_2d.pt").read_bytes())
    assert not execution.up_to_date(executed, companion["input_hash"])


def test_no_chapter_reads_what_a_chapter_or_the_book_build_writes() -> None:
    """Results flow one way: the files each committed chapter recorded as read are checkpoints, their cached
    likelihoods, the reproduction's seeds.json and the benchmark's reference numbers, never an executed
    chapter, its glue or figures, or anything else under book/ (which the build writes)."""
    allowed = ("checkpoints/", "reproduction/runs/seeds.json", "benchmarks/")
    for executed in sorted((ROOT / "book" / "chapters").glob("*.ipynb")):
        reads = json.loads(executed.read_text())["metadata"]["companion"]["reads"]
        assert not [r for r in reads if not r.startswith(allowed) or r.startswith("book/")], executed.name
        assert not [r for r in reads if r.endswith((".ipynb", ".glue.json", ".png", ".svg"))], executed.name


def test_the_browser_check_names_a_missing_empty_or_untypeset_preview() -> None:
    spec = importlib.util.spec_from_file_location("browser_check", ROOT / "book" / "browser_check.py")
    check = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(check)
    seen = {"links": 3, "first": "Lemma 1.2.6"}
    assert check.preview_problems(seen, [{"text": "Lemma 1.2.6 (chain rule)", "math": 2, "mathSource": 2}]) == []
    assert "sphinx-tippy's script did not run" in check.preview_problems({"links": 0, "first": ""}, [])[0]
    assert check.preview_problems(seen, []) == ["hovering 'Lemma 1.2.6' showed no preview"]
    assert "is empty" in check.preview_problems(seen, [{"text": "", "math": 0, "mathSource": 0}])[0]
    assert "2 formulas untypeset" in check.preview_problems(seen, [{"text": "x", "math": 0, "mathSource": 2}])[0]

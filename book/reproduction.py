"""Chapters 4 and 5 re-executed against a reproduction's checkpoints, and compared with the committed book.

    .venv/bin/python book/reproduction.py                          # the run in reproduction/runs
    .venv/bin/python book/reproduction.py --runs DIR --chapter 05  # another run, one chapter

``python -m thesis_lib.reproduction.reproduce`` trains every experiment into ``DIR/seed{S}/`` and writes
``DIR/summary.json`` and, computed from the checkpoints, the headline results by seed that the chapters' tables
over seeds read (``DIR/seeds.json``); ``make reproduce`` then runs this script, which reads the summary and
leaves ``seeds.json`` as it is. For each seed of the run it executes the chapters that train models (4 and 5)
in the run's profile, with ``seed=S`` and ``checkpoint_dir`` the folder holding that seed's checkpoints, into
``DIR/seed{S}/chapters/``. A chapter's checks are its assert cells, each the tolerance the book states for a
claim; a chapter that fails one is reported with that check. Then every number the book's regression tests
compare (the outputs of the cells tagged ``nbval-check-output``) and every result glued into the prose is set
beside the committed book's (``book/chapters``, seed 0 of the full profile). The comparison goes to
``DIR/CHAPTERS.md`` and replaces the chapters section of ``DIR/REPORT.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from execution import ensure_kernel, execute_chapter, input_hash
from sources import DEFAULT_OUTPUT_DIR, LIB_DIR, NOTEBOOKS_DIR, REPO_ROOT, BuildError, discover_chapters

from thesis_lib.ground.config import MALLOC_ENV
from thesis_lib.ground.files import atomic_write_text

TRAINING_CHAPTERS = ("04", "05")
DEFAULT_RUNS = REPO_ROOT / "reproduction" / "runs"
SECTION = "## Chapters executed against these checkpoints"
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def checked_lines(nb: Any) -> list[tuple[str, str]]:
    """``(cell source's first line, output line)`` for every text line of the outputs nbval compares."""
    lines = []
    for cell in nb.cells:
        if cell.cell_type != "code" or "nbval-check-output" not in cell.metadata.get("tags", []):
            continue
        label = next((ln for ln in cell.source.splitlines() if ln.strip()), "")[:60]
        for out in cell.get("outputs", []):
            text = out.get("text") if out.get("output_type") == "stream" else out.get("data", {}).get("text/plain")
            text = "".join(text) if isinstance(text, list) else (text or "")
            lines += [(label, ln) for ln in text.splitlines() if ln.strip()]
    return lines


def glued(nb: Any) -> dict[str, str]:
    """The results glued into the prose (myst-nb): name -> its text."""
    found = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            meta = out.get("metadata", {}).get("scrapbook")
            if meta:  # myst-nb stores the value under its prefix: application/papermill.record/text/plain
                data = out.get("data", {})
                text = data.get(meta.get("mime_prefix", "") + "text/plain", data.get("text/plain", ""))
                found[meta["name"]] = "".join(text) if isinstance(text, list) else text
    return found


def _relative(new: float, old: float) -> float:
    return 0.0 if new == old else abs(new - old) / max(abs(old), 1e-12)


def compare_numbers(committed: Sequence[tuple[str, str]], reproduced: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Line by line, number by number: how many numbers, how many printed alike, the lines that differ
    (committed and reproduced) and the largest relative difference among numbers in the same place."""
    differing, numbers, same, largest = [], 0, 0, 0.0
    for i in range(max(len(committed), len(reproduced))):
        old = committed[i] if i < len(committed) else ("", "")
        new = reproduced[i] if i < len(reproduced) else ("", "")
        a, b = NUMBER.findall(old[1]), NUMBER.findall(new[1])
        numbers += len(a)
        same += sum(x == y for x, y in zip(a, b))
        if old[1] != new[1]:
            differing.append({"cell": old[0] or new[0], "committed": old[1], "reproduced": new[1]})
        if len(a) == len(b):
            largest = max([largest, *(_relative(float(y), float(x)) for x, y in zip(a, b) if x != y)])
    return {"numbers": numbers, "same": same, "differing": differing, "largest_relative": largest}


def checkpoint_dirs(summary: Mapping[str, Any]) -> dict[int, Path]:
    """Seed -> the folder of its checkpoints, from the records of the run (after ``--overwrite-committed``
    the committed folder); ``out/seed{S}`` for a seed without a finished full-profile task."""
    dirs = {int(s): Path(summary["out"]) / f"seed{s}" for s in summary["seeds"]}
    for rec in summary["tasks"].values():
        if rec.get("checkpoint"):
            dirs[int(rec["seed"])] = Path(rec["checkpoint"]).parent
    return dirs


def execute(runs: Path, summary: Mapping[str, Any], chapters: Mapping[str, Path]) -> dict[tuple[int, str], Any]:
    """Execute each chapter for each seed; ``(seed, chapter)`` -> its output path, or the error's text."""
    os.environ.update(MALLOC_ENV)  # the chapters' kernels start with the allocator settings of training
    ensure_kernel()
    results: dict[tuple[int, str], Any] = {}
    for seed, folder in checkpoint_dirs(summary).items():
        # the seed's checkpoints; its figures beside them, not over the book's
        parameters = {"profile": summary["profile"], "seed": seed, "checkpoint_dir": str(folder),
                      "figures_dir": str(runs / f"seed{seed}" / "figures")}
        for number, source in chapters.items():
            output = runs / f"seed{seed}" / "chapters" / f"{source.stem}.ipynb"
            output.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            try:
                execute_chapter(number, source, output, parameters, input_hash(source.read_bytes(), parameters,
                                                                                   LIB_DIR))
                results[(seed, number)] = output
                print(f"seed {seed}, chapter {number}: every check passed ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
            except BuildError as exc:
                results[(seed, number)] = str(exc)
                print(f"seed {seed}, chapter {number}: FAILED: {exc}", file=sys.stderr, flush=True)
    return results


def _cell(text: str) -> str:
    return text.replace("|", "\\|").strip() or " "


def report(results: Mapping[tuple[int, str], Any], chapters: Mapping[str, Path], profile: str,
           committed_dir: Path = DEFAULT_OUTPUT_DIR) -> str:
    """The chapters section: each chapter and seed, its checks, and its numbers beside the committed book's."""
    import nbformat

    lines = [SECTION, ""]
    if profile != "full":
        lines += ["The committed book is the full profile; a quick-profile run is not compared number by "
                  "number, only its checks are run.", ""]
    glue_table: dict[str, dict[str, str]] = {}
    for (seed, number), result in sorted(results.items()):
        source = chapters[number]
        if not isinstance(result, Path):
            lines += [f"### Chapter {number}, seed {seed}: a check failed", "", "```", result, "```", ""]
            continue
        new = nbformat.read(result, as_version=4)
        committed_path = committed_dir / f"{source.stem}.ipynb"
        old = nbformat.read(committed_path, as_version=4) if committed_path.is_file() else None
        n_asserts = sum("assert" in c.source for c in new.cells if c.cell_type == "code")
        lines += [f"### Chapter {number}, seed {seed}: every check passed", "",
                  f"All {n_asserts} cells with checks ran without an assertion failing."]
        for key, value in glued(new).items():
            glue_table.setdefault(key, {"committed": glued(old).get(key, "") if old else ""})[f"seed {seed}"] = value
        if old is None or profile != "full":
            lines.append("")
            continue
        cmp = compare_numbers(checked_lines(old), checked_lines(new))
        lines += [f"Numbers in the outputs that nbval compares: {cmp['numbers']}, of which {cmp['same']} printed "
                  f"exactly as in the committed book; the largest relative difference between two numbers in the "
                  f"same place is {cmp['largest_relative']:.2%}.", ""]
        if cmp["differing"]:
            lines += ["| cell | committed | reproduced |", "| --- | --- | --- |"]
            lines += [f"| `{_cell(d['cell'])}` | `{_cell(d['committed'])}` | `{_cell(d['reproduced'])}` |"
                      for d in cmp["differing"]]
            lines.append("")
    if glue_table:
        seeds = sorted({k for row in glue_table.values() for k in row if k != "committed"})
        lines += ["### Results quoted in the prose", "", "| result | committed | " + " | ".join(seeds) + " |",
                  "| --- | ---: | " + " | ".join("---:" for _ in seeds) + " |"]
        lines += [f"| {key} | {_cell(row['committed'])} | " + " | ".join(_cell(row.get(s, "")) for s in seeds) + " |"
                  for key, row in sorted(glue_table.items())]
    return "\n".join(lines).rstrip() + "\n"


def replace_section(report_text: str, section: str) -> str:
    """``REPORT.md`` with its chapters section (from :data:`SECTION` to the end) replaced by ``section``."""
    head = report_text.split(SECTION, 1)[0].rstrip()
    return (head + "\n\n" if head else "") + section


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help=f"default: {DEFAULT_RUNS}")
    parser.add_argument("--chapter", action="append", choices=TRAINING_CHAPTERS, default=None)
    args = parser.parse_args(None if argv is None else list(argv))
    summary_path = args.runs / "summary.json"
    if not summary_path.is_file():
        parser.error("--runs must be a folder that python -m thesis_lib.reproduction.reproduce wrote; "
                     f"no {summary_path}")
    summary = json.loads(summary_path.read_text())
    every = discover_chapters(NOTEBOOKS_DIR)
    chapters = {n: every[n] for n in (args.chapter or TRAINING_CHAPTERS)}
    results = execute(args.runs, summary, chapters)
    section = report(results, chapters, summary["profile"])
    atomic_write_text(args.runs / "CHAPTERS.md", section)
    report_path = args.runs / "REPORT.md"
    atomic_write_text(report_path, replace_section(report_path.read_text() if report_path.is_file() else "", section))
    failed = [k for k, v in results.items() if not isinstance(v, Path)]
    print(f"{len(results) - len(failed)} of {len(results)} chapter runs passed every check; in {report_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
r"""Build the companion book: execute the chapters with papermill, then render them with Sphinx.

Usage (from the repository root, with the project's virtual environment)::

    python book/build.py --profile quick              # execute what changed, render book/_build/html
    python book/build.py --chapter 03 -p seed 1       # one chapter (repeat --chapter for more)
    python book/build.py --force                      # execute every chapter again, re-render all pages
    python book/build.py --no-render                  # execute only
    python book/build.py --check-sources              # do the executed notebooks match their sources?
    python book/browser_check.py book/_build/html     # then look at the site in headless Chromium

Exit status: 0 success; 1 a chapter failed, a source is malformed, the site needs the network, or
--check-sources found a mismatch; 2 bad command line (unknown parameter, profile not quick/full, ...).

What a build does
-----------------
1. Checks the command line and every chapter's source (see the conventions below) before it runs
   anything; unless ``--no-render``, writes the index of the thesis ``book/thesis_index.md`` from the
   sources (``book/thesis_index.py``), which fails if an item of the thesis has no home in a chapter.
2. For each chapter ``notebooks/NN_slug.md``: converts it with jupytext, executes it with papermill
   (kernel ``python3`` of this virtual environment, installed with ``ipykernel install --sys-prefix``
   if missing; working directory = repository root) with the parameter ``profile`` (default ``full``)
   and any ``-p NAME VALUE``, and writes
   the executed notebook to ``book/chapters/NN_slug.ipynb`` (or ``--output-dir``). Figures go to
   ``book/_build/figures/`` (``figures_dir`` left at None: ChapterConfig's default; a relative
   ``-p figures_dir DIR`` is relative to the repository root).
   *Cache*: a chapter is skipped when its executed notebook records, under
   ``metadata.companion.input_hash``, the SHA-256 of its source, its parameters, every
   ``thesis_lib/**/*.py`` and the installed versions of torch and thesis_lib (``execution.input_hash``),
   and, under ``metadata.companion.reads``, the SHA-256 of every checkpoint and cached metric it read
   while it ran, each still the same (``execution.up_to_date``: a retrained checkpoint makes the
   chapters that load it stale); ``--force`` executes it anyway.
   *Atomic*: the notebook is written to a temporary file and moved into place, so a failing chapter
   leaves the previous executed notebook as it was; the failed run is kept in ``book/_build/failed/``
   (``OUTPUT_DIR/_failed/`` with ``--output-dir``)
   and the build names the chapter, the cell and the line of the source.
   *Small diffs*: papermill's timestamps and durations, kernel timings and temporary paths are
   stripped and cell ids are derived from the cells' contents; execution counts stay (nbval needs them).
   What the status page needs is recorded once, under ``metadata.companion``: when the chapter started
   (``executed``, UTC), how long it ran (``seconds``) and its inputs part by part (``inputs``).
   papermill's injected-parameters cell gets the tag ``remove-cell``.
3. Renders ``sphinx-build -b html -n -W --keep-going book book/_build/html`` (``book/conf.py``; notebook
   execution is off there: papermill is the only executor), copies MathJax 3 from the installed
   ``django-static-mathjax`` to ``book/_build/html/mathjax/`` (``mathjax_path`` in ``conf.py``
   points there from every page, also over ``file://``), and fails if any page's ``<script>`` or
   ``<link>`` needs an http(s) URL or points at a file that is not in the site. Before it renders, it
   writes the status page ``book/status.md`` (when, how and from what each chapter ran, and whether it
   is still up to date) and the reproduction's appendix ``book/reproduction_report.md``
   (``book/status.py``); after, it puts a badge linking to its row of the status page under each
   chapter's title.

Conventions for chapter authors: see the docstring of ``book/sources.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from execution import ensure_kernel, execute_chapter, input_hash, up_to_date
from sources import (
    BOOK_DIR,
    DEFAULT_OUTPUT_DIR,
    LIB_DIR,
    NOTEBOOKS_DIR,
    REPO_ROOT,
    SITE_DIR,
    BuildError,
    UsageError,
    check_sources,
    discover_chapters,
    lint_proof_blocks,
    select_chapters,
)
from status import install_badges, write_pages
from thesis_index import write_index
from website import render, toc_chapter_files

from thesis_lib.ground.cli import ArgumentParser, existing_dir, folder_target
from thesis_lib.ground.config import DEVICES, MALLOC_ENV

PARAMETER_NAMES = ("profile", "seed", "device", "data_dir", "retrain", "figures_dir", "checkpoint_dir")
PROFILES = ("quick", "full")
# Only the profile is injected by default: figures_dir=None means ChapterConfig's default,
# <repo>/book/_build/figures as an absolute path, which stays right when nbval re-runs a committed
# notebook from book/chapters/ (a relative path would then resolve against book/chapters/).
DEFAULT_PARAMETERS: dict[str, Any] = {"profile": "full"}


def parse_value(text: str) -> Any:
    """Parse a ``-p`` value as YAML, as papermill does (``None`` is None, ``True`` is True, 3 is int)."""
    import yaml

    if text == "None":
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def validate_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Return the parameters a chapter is executed with: the defaults updated by ``parameters``.

    Raises :class:`UsageError` naming the parameter for an unknown name, a profile other than
    quick/full, or a value of the wrong kind (``seed`` a non-negative int, ``retrain`` a bool,
    ``device`` one of auto/cpu/cuda, ``data_dir``/``figures_dir``/``checkpoint_dir`` a path string or None).
    """
    unknown = [name for name in parameters if name not in PARAMETER_NAMES]
    if unknown:
        raise UsageError(f"unknown parameter {', '.join(map(repr, unknown))}: "
                         f"allowed are {', '.join(PARAMETER_NAMES)}")
    merged = {**DEFAULT_PARAMETERS, **parameters}
    if merged["profile"] not in PROFILES:
        raise UsageError(f"profile must be one of {', '.join(PROFILES)}; got {merged['profile']!r}")
    if "seed" in merged:
        seed = merged["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise UsageError(f"seed must be a non-negative integer; got {seed!r}")
    if "retrain" in merged and not isinstance(merged["retrain"], bool):
        raise UsageError(f"retrain must be True or False; got {merged['retrain']!r}")
    if "device" in merged and merged["device"] not in DEVICES:
        raise UsageError(f"device must be one of {', '.join(DEVICES)}; got {merged['device']!r}")
    for name in ("data_dir", "figures_dir", "checkpoint_dir"):
        if name in merged and merged[name] is not None and not isinstance(merged[name], str):
            raise UsageError(f"{name} must be a path or None; got {merged[name]!r}")
    check_folders(merged)
    return dict(sorted(merged.items()))


def check_folders(parameters: Mapping[str, Any]) -> None:
    """``data_dir`` and ``checkpoint_dir`` must be existing folders (the chapters read from them), and
    ``figures_dir`` a folder or a path where one can be made. Relative paths are relative to the repository
    root, where the chapters run. Raises :class:`UsageError` naming the parameter."""
    checks = {"data_dir": existing_dir, "checkpoint_dir": existing_dir, "figures_dir": folder_target}
    for name, check in checks.items():
        if parameters.get(name) is not None:
            try:
                check(name, REPO_ROOT / Path(parameters[name]).expanduser())
            except ValueError as exc:
                raise UsageError(str(exc)) from None


def check_device(parameters: Mapping[str, Any]) -> None:
    """``device`` cuda needs a CUDA device that torch sees: checked here, before any kernel starts (torch is
    imported only then)."""
    if parameters.get("device") == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("device 'cuda' was asked for but torch sees no CUDA device; use auto or cpu")


def make_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="book/build.py",
        description="Execute the chapters (notebooks/NN_slug.md) with papermill and render the book.",
        epilog="Conventions for chapter authors: see the docstring of book/sources.py.",
    )
    parser.add_argument("--chapter", action="append", metavar="NN",
                        help="only this chapter (e.g. 03); repeatable; default: all")
    parser.add_argument("--profile", metavar="{quick,full}",
                        help="shorthand for -p profile VALUE (default: full)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                        help=f"a chapter parameter ({', '.join(PARAMETER_NAMES)}); VALUE is parsed as YAML "
                             "like papermill's -p; repeatable")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR,
                        help="where executed notebooks go (default: book/chapters); "
                             "rendering needs the default, so combine another folder with --no-render")
    parser.add_argument("--notebooks-dir", type=Path, default=NOTEBOOKS_DIR,
                        help="where the chapter sources are (default: notebooks)")
    parser.add_argument("--force", action="store_true",
                        help="execute every selected chapter even if it is up to date; re-render every page")
    parser.add_argument("--no-render", action="store_true", help="execute only; do not run sphinx-build")
    parser.add_argument("--check-sources", action="store_true",
                        help="only check that each executed notebook matches its source; execute nothing")
    return parser


def collect_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The parameters from ``-p`` and ``--profile``, validated (see :func:`validate_parameters`)."""
    given: dict[str, Any] = {}
    for name, value in args.parameter:
        if name in given:
            raise UsageError(f"parameter {name!r} given twice")
        given[name] = parse_value(value)
    if args.profile is not None:
        if "profile" in given and given["profile"] != args.profile:
            raise UsageError(f"--profile {args.profile!r} contradicts -p profile {given['profile']!r}")
        given["profile"] = args.profile
    return validate_parameters(given)


def execute_chapters(selected: Mapping[str, Path], parameters: Mapping[str, Any], output_dir: Path, *,
                     force: bool) -> None:
    """Execute each chapter of ``selected`` whose inputs changed (all with ``force``) into ``output_dir``."""
    shown = ", ".join(f"{k}={v!r}" for k, v in parameters.items())
    print(f"parameters: {shown}; notebooks to {output_dir}", flush=True)
    os.environ.update(MALLOC_ENV)  # the chapters' kernels start with the allocator settings of training
    kernel_ready = False
    failures: list[str] = []
    started = time.perf_counter()
    for number, source in selected.items():
        t0 = time.perf_counter()
        output = output_dir / f"{source.stem}.ipynb"
        digest = input_hash(source.read_bytes(), parameters, LIB_DIR)
        if not force and up_to_date(output, digest):
            print(f"chapter {number} {source.stem}: up to date ({time.perf_counter() - t0:.1f} s)", flush=True)
            continue
        if not kernel_ready:
            ensure_kernel()
            kernel_ready = True
        try:
            execute_chapter(number, source, output, parameters, digest)
        except BuildError as exc:
            failures.append(str(exc))
            print(f"chapter {number} {source.stem}: FAILED ({time.perf_counter() - t0:.1f} s)\n  {exc}",
                  file=sys.stderr, flush=True)
            continue
        print(f"chapter {number} {source.stem}: executed ({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"chapters: {time.perf_counter() - started:.1f} s", flush=True)
    if failures:
        raise BuildError(f"{len(failures)} chapter(s) failed; the book was not rendered")


def run(args: argparse.Namespace) -> int:
    parameters = None if args.check_sources else collect_parameters(args)
    chapters = discover_chapters(args.notebooks_dir)
    if not chapters:
        raise UsageError(f"no chapter sources NN_slug.md in {args.notebooks_dir}")
    selected = select_chapters(chapters, args.chapter)
    output_dir = Path(args.output_dir).resolve()

    if args.check_sources:
        problems = check_sources(selected, output_dir, all_chapters=not args.chapter)
        for problem in problems:
            print(f"MISMATCH {problem}", file=sys.stderr)
        if not problems:
            print(f"sources match: {len(selected)} chapter(s) in {output_dir}")
        return 1 if problems else 0

    assert parameters is not None
    check_device(parameters)
    if not args.no_render and output_dir != DEFAULT_OUTPUT_DIR.resolve():
        raise UsageError("--output-dir other than book/chapters cannot be rendered: add --no-render")
    problems = [f"chapter {n}: {p}" for n, s in selected.items()
                for p in lint_proof_blocks(s.read_text(encoding="utf-8"), s.name)]
    if problems:
        raise BuildError("malformed thesis blocks (see book/sources.py's docstring):\n  " + "\n  ".join(problems))
    if not args.no_render:  # book/thesis_index.md comes from the sources: fails, naming an item without a home
        write_index(notebooks_dir=args.notebooks_dir)

    execute_chapters(selected, parameters, output_dir, force=args.force)
    if not args.no_render:
        missing = [p for p in toc_chapter_files(BOOK_DIR) if not p.exists()]
        if missing:
            raise BuildError("chapters in intro.md's toctree have not been executed: "
                             + ", ".join(p.name for p in missing) + " (run book/build.py without --chapter)")
        statuses = write_pages(toc_chapter_files(BOOK_DIR))  # book/status.md, book/reproduction_report.md
        t0 = time.perf_counter()
        render(BOOK_DIR, fresh=args.force)
        install_badges(SITE_DIR, statuses)
        print(f"rendered {SITE_DIR.relative_to(REPO_ROOT)} ({time.perf_counter() - t0:.1f} s)", flush=True)
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        return run(args)
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc} (see {parser.prog} --help)", file=sys.stderr)
        return 2
    except BuildError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

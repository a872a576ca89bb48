"""Retrain every experiment of chapters 4 and 5, for one seed or several, as a task graph on Dask distributed.

    python -m thesis_lib.reproduction.reproduce --dry-run  # the plan and its estimated time, nothing run
    python -m thesis_lib.reproduction.reproduce            # full profile, seed 0, every experiment
    python -m thesis_lib.reproduction.reproduce --profile quick --seeds 0 1 2 --only vae_standard linear_ae_2
    python -m thesis_lib.reproduction.reproduce --scheduler tcp://head-node:8786 --seeds 0 1 2  # a cluster

A task trains one experiment (:mod:`thesis_lib.reproduction.experiments`) with one seed: in the ``full`` profile into
``OUT/seed{S}/<name>.pt`` (``OUT`` is ``reproduction/runs`` unless ``--out`` says otherwise; the committed
``checkpoints/`` only with ``--out checkpoints --overwrite-committed``, which trains seed 0 into
``checkpoints/seed0/`` and, once every task succeeded, moves each file onto ``checkpoints/<name>.pt``).
The ``quick`` profile saves no weights. A trained model whose likelihoods chapter 5 reads
(``Experiment.likelihoods``) is followed by a task that estimates them and caches them beside the
checkpoint (:func:`thesis_lib.reproduction.tasks.run_likelihood_task`). A warm start (``vae_nll_long``,
``iwae_nll_long``) waits for its parent's task of the same seed and starts from its checkpoint. In the
full profile, once a seed's models and likelihoods are there, a headlines task computes the headline
results of chapters 4 and 5 from them (:mod:`thesis_lib.reproduction.headlines`; left out when ``--only``
or ``--skip`` leaves out a model they read). Every ``--checkpoint-every`` epochs a task saves, so a task
whose worker died is retried and resumes on the same trajectory, and running the command again loads what
is finished and trains only the rest.

``OUT/summary.json`` records each task (status, wall time, final metrics, SHA-256 of the checkpoint and
of the weights, the error of a failed one), ``OUT/REPORT.md`` compares the final losses and the
likelihoods with the committed checkpoints', and ``OUT/seeds.json`` holds the headline results by name
and seed with the SHA-256 of the weights of each experiment and seed (:func:`seeds_file`): the tables
over seeds of chapters 4 and 5 read the committed run's. The command exits with 1 when a task failed;
the tasks that depend on it are skipped, all others run.

By default the graph runs on a ``LocalCluster`` of ``--workers`` single-threaded worker processes (the
free CPUs by default), each started with glibc's allocator settings (:data:`thesis_lib.ground.config.MALLOC_ENV`)
and set up by :func:`thesis_lib.runtime.process.tune_process` before it trains. With ``--scheduler ADDRESS`` the
tasks go to an existing cluster instead, for example one that ``dask-jobqueue`` starts on SLURM::

    from dask_jobqueue import SLURMCluster      # in a Python session on the login node, kept open
    cluster = SLURMCluster(cores=1, processes=1, memory="8GB", scheduler_options={"port": 8786},
                           job_script_prologue=["export MALLOC_MMAP_THRESHOLD_=33554432",
                                                "export MALLOC_TRIM_THRESHOLD_=1073741824"])
    cluster.scale(jobs=8)

Its workers must see the same filesystem as this command for ``OUT`` and the data (``$THESIS_DATA_DIR``,
passed to them as an absolute path), have this library installed, and should run one thread each.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib.metadata
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from thesis_lib.runtime import data
from thesis_lib.reproduction import experiments, tasks
from thesis_lib.ground.cli import ArgumentParser, check_scheduler, existing_dir, folder_target, usage_errors
from thesis_lib.ground.config import MALLOC_ENV, PROFILES
from thesis_lib.ground.files import atomic_write_text
from thesis_lib.ground.paths import default_checkpoint_dir, default_data_dir
from thesis_lib.runtime.process import choose_threads, restart_with_malloc_settings
from thesis_lib.runtime.provenance import cpu_model
from thesis_lib.reproduction.reproduce_report import minutes, format_plan, report_markdown

DEFAULT_OUT = Path("reproduction/runs")
VERSIONS = ("torch", "numpy", "thesis_lib", "dask", "distributed")  # packages named in the report


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m thesis_lib.reproduction.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=PROFILES, default="full")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="SEED")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="these experiments (and those they warm-start from) instead of all")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME",
                        help="leave these experiments out (e.g. ae_thesis_10000 for extra seeds)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    parser.add_argument("--overwrite-committed", action="store_true",
                        help="allow --out checkpoints: replace the committed checkpoints (full profile, seed 0)")
    parser.add_argument("--workers", type=int, default=None,
                        help="single-threaded workers of the local cluster; default: the free CPUs")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS", help="use this running cluster instead")
    parser.add_argument("--checkpoint-every", type=int, default=10, metavar="EPOCHS",
                        help="epochs between a task's saves (where a retried task resumes); default 10")
    parser.add_argument("--retries", type=int, default=1, help="reruns of a task that raised; default 1")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $THESIS_DATA_DIR or ~/.cache/...")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, checked: a bad value exits (status 2) naming the parameter, before any work."""
    parser = _parser()
    args = parser.parse_args(argv)
    names = list(experiments.EXPERIMENTS)
    for option, given in (("--only", args.only or []), ("--skip", args.skip)):
        unknown = [n for n in given if n not in experiments.EXPERIMENTS]
        if unknown:
            parser.error(f"{option} must name experiments among {', '.join(names)}; got {', '.join(unknown)}")
    if any(s < 0 for s in args.seeds):
        parser.error(f"--seeds must be non-negative integers; got {args.seeds}")
    for option, value, low in (("--workers", args.workers, 1), ("--checkpoint-every", args.checkpoint_every, 1),
                               ("--retries", args.retries, 0)):
        if value is not None and value < low:
            parser.error(f"{option} must be an integer of at least {low}; got {value}")
    if args.scheduler is not None and args.workers is not None:
        parser.error("--workers applies to the local cluster only; the cluster at --scheduler has its own workers")
    _check_out(parser, args)
    with usage_errors(parser):
        folder_target("--out", args.out)
        existing_dir("--data-dir", args.data_dir or default_data_dir())
        if args.scheduler is not None:
            check_scheduler("--scheduler", args.scheduler)
    args.seeds = list(dict.fromkeys(args.seeds))
    args.only = [n for n in dict.fromkeys(args.only or names) if n not in args.skip]
    needed = [n for n in tasks.with_ancestors(args.only, experiments.EXPERIMENTS) if n in args.skip]
    if needed:
        parser.error(f"--skip must not name an experiment that another one warm-starts from; got {', '.join(needed)}")
    if not args.only:
        parser.error("--skip leaves no experiment to run")
    return args


def _check_out(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--out`` stays out of the committed ``checkpoints/`` unless ``--overwrite-committed`` asks for it."""
    out, committed = args.out.expanduser().resolve(), default_checkpoint_dir().resolve()
    inside = out == committed or committed in out.parents
    if inside and not args.overwrite_committed:
        parser.error(f"--out must not be the committed checkpoints ({committed}) unless --overwrite-committed "
                     f"is given; got {args.out}")
    if args.overwrite_committed and (out != committed or args.profile != "full" or args.seeds != [0]):
        parser.error("--overwrite-committed needs --out checkpoints, --profile full and --seeds 0 (the committed "
                     f"checkpoints are seed 0 of the full profile); got --out {args.out}, --profile {args.profile}, "
                     f"--seeds {' '.join(map(str, args.seeds))}")



@contextlib.contextmanager
def local_cluster(workers: int) -> Iterator[Any]:
    """A ``Client`` of a ``LocalCluster`` of ``workers`` single-threaded processes that start with
    :data:`~thesis_lib.ground.config.MALLOC_ENV` (the nanny's pre-spawn environment: glibc reads it at start-up;
    dask's own default would set a far lower trim threshold). This process's environment, which the
    nanny changes before it spawns, is restored afterwards."""
    import dask
    from dask.distributed import Client, LocalCluster

    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **MALLOC_ENV}
    saved = dict(os.environ)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), \
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                             dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)


TaskFn = Callable[..., dict[str, Any]]  # tasks.run_task, or a test's wrapper of it


def execute(plan: Sequence[tasks.Task], client: Any, task_fn: TaskFn | None = None, retries: int = 1,
            progress: bool = True) -> dict[str, dict[str, Any]]:
    """Run ``plan`` on ``client`` with a progress bar; return each task's record by key: done, failed
    (with its error) or skipped (a task it depends on failed). ``task_fn`` (default
    :func:`thesis_lib.reproduction.tasks.run_task`) is what each task calls on its worker.

    A task is submitted only once every task it depends on has finished, with their results as plain
    values, so that the scheduler places it on whichever worker is free. (Submitted earlier, with its
    parent's future as an argument, a warm start was queued on its parent's worker behind a long task
    while the other worker sat idle.) Ready tasks go longest remaining path first.
    """
    from dask.distributed import as_completed
    from tqdm import tqdm

    task_fn, level = task_fn or tasks.run_task, tasks.bottom_levels(plan)
    results: dict[str, dict[str, Any]] = {}
    futures: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}

    def submit(ready: Sequence[tasks.Task]) -> list[Any]:
        for task in ready:
            futures[task.key] = client.submit(task_fn, task.spec, *(results[p] for p in task.parents),
                                              key=task.key, pure=False, retries=retries,
                                              priority=int(level[task.key]))
        return [futures[t.key] for t in ready]

    estimate = {t.key: t.estimate for t in plan}
    bar_format = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s of estimated work [{elapsed}<{remaining}" \
                 "{postfix}]"
    pending = as_completed(submit(tasks.ready(plan, set(), set())))
    with tqdm(total=round(sum(estimate.values())), desc="reproduce", bar_format=bar_format, disable=not progress,
              file=sys.stderr, dynamic_ncols=True) as bar:
        for future in pending:
            if future.status == "finished":
                results[future.key] = future.result()
            elif future.status == "error":
                errors[future.key] = future.exception()
            else:  # cancelled, or lost with the scheduler
                errors[future.key] = RuntimeError(f"the task was {future.status}")
            for new in submit(tasks.ready(plan, set(results), set(futures))):
                pending.add(new)
            bar.update(round(estimate[future.key]))
            bar.set_postfix_str(f"{len(results) + len(errors)}/{len(plan)} tasks, {len(errors)} not done")
    return _records(plan, results, futures, errors)


def _records(plan: Sequence[tasks.Task], results: Mapping[str, dict[str, Any]], futures: Mapping[str, Any],
             errors: Mapping[str, BaseException]) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for task in plan:  # dependency order: a parent's record comes first
        base = {"name": task.spec.name, "seed": task.spec.seed, "estimate_seconds": task.estimate,
                "parents": list(task.parents), **({"splits": list(task.spec.splits)} if task.spec.splits else {})}
        if task.key in results:
            records[task.key] = {**base, **results[task.key]}
            continue
        if task.key not in errors:  # never submitted: a task it depends on did not finish
            what = ", likelihoods," if task.spec.splits else ""
            bad = [p for p in task.parents if records[p]["status"] != "done"]
            records[task.key] = {**base, "status": "skipped", "wall_seconds": None,
                                 "error": f"{task.spec.name} (seed {task.spec.seed}){what} not run: it depends on "
                                          f"{', '.join(bad)}, which did not finish"}
            continue
        err = errors[task.key]
        tb = getattr(futures[task.key], "traceback", lambda: None)()
        records[task.key] = {**base, "status": "failed", "wall_seconds": getattr(err, "wall_seconds", None),
                             "error": str(err) if isinstance(err, tasks.TaskFailed) else
                             f"{task.spec.name} (seed {task.spec.seed}): {type(err).__name__}: {err}",
                             "traceback": "".join(traceback.format_tb(tb)[-5:]) if tb is not None else None}
    return records


def _versions() -> dict[str, str]:
    found = {}
    for name in VERSIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def counts(records: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    return {s: sum(r["status"] == s for r in records.values()) for s in ("done", "failed", "skipped")}


def write_summary(out: Path, records: Mapping[str, Mapping[str, Any]], meta: Mapping[str, Any]) -> Path:
    """``OUT/summary.json``: the run's settings and each task's record, written atomically."""
    body = {**meta, "tasks": records}
    return atomic_write_text(out / "summary.json", json.dumps(body, indent=1, default=str) + "\n")



def seeds_file(records: Mapping[str, Mapping[str, Any]], profile: str) -> dict[str, Any] | None:
    """What ``OUT/seeds.json`` holds: the results of every finished headlines task, by name and seed, and
    the SHA-256 of the weights of every trained experiment and seed; ``None`` when no headlines task
    finished (the quick profile, a run of some experiments only)."""
    found = {int(r["seed"]): r["headlines"] for r in records.values()
             if r.get("name") == tasks.HEADLINES and r["status"] == "done"}
    if not found:
        return None
    results: dict[str, dict[str, float]] = {}
    for seed in sorted(found):
        for name, value in found[seed].items():
            results.setdefault(name, {})[str(seed)] = value
    weights: dict[str, dict[str, str]] = {}
    for rec in records.values():
        if rec.get("weights_sha256"):
            weights.setdefault(rec["name"], {})[str(rec["seed"])] = rec["weights_sha256"]
    return {"profile": profile, "seeds": [str(s) for s in sorted(found)], "results": results,
            "weights_sha256": weights}


def promote(records: Mapping[str, dict[str, Any]], committed: Path) -> None:
    """``--overwrite-committed``: move each reproduced checkpoint onto the committed one (atomic renames)."""
    for rec in records.values():
        if rec.get("checkpoint"):
            source = Path(rec["checkpoint"])
            os.replace(source, committed / source.name)
            rec["checkpoint"] = str(committed / source.name)
            with contextlib.suppress(OSError):
                source.parent.rmdir()  # once empty


@contextlib.contextmanager
def _client(args: argparse.Namespace, n_tasks: int) -> Iterator[tuple[Any, int, str]]:
    """A client of the cluster at ``--scheduler``, or of a local cluster; its worker count; a description."""
    if args.scheduler:
        from dask.distributed import Client

        with Client(args.scheduler, timeout="10s") as client:
            workers = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
            yield client, workers, f"scheduler {args.scheduler}"
        return
    workers = min(args.workers or choose_threads(), n_tasks)
    with local_cluster(workers) as client:
        yield client, workers, "local cluster"


def run(args: argparse.Namespace, plan: Sequence[tasks.Task],
        task_fn: TaskFn | None = None) -> dict[str, dict[str, Any]]:
    """Run ``plan`` on the cluster that ``args`` names; write the summary and the report; return the records."""
    started, t0 = _dt.datetime.now().astimezone(), time.perf_counter()
    with _client(args, len(plan)) as (client, workers, where):
        if args.scheduler:
            print(f"on {workers} workers of {args.scheduler}: about "
                  f"{minutes(tasks.wall_estimate(plan, workers))} (greedy schedule)", flush=True)
        records = execute(plan, client, task_fn, retries=args.retries)
    if args.overwrite_committed and all(r["status"] == "done" for r in records.values()):
        promote(records, default_checkpoint_dir())
    elif args.overwrite_committed:
        print(f"not every task finished: the committed checkpoints are unchanged; the new ones are in "
              f"{args.out / 'seed0'}", file=sys.stderr)
    meta = {"profile": args.profile, "seeds": args.seeds, "out": str(args.out.resolve()), "workers": workers,
            "scheduler": where, "started": started.isoformat(timespec="seconds"),
            "finished": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "wall_seconds": time.perf_counter() - t0, "estimate_seconds": tasks.wall_estimate(plan, workers),
            "cpu": cpu_model(), "versions": _versions(), "counts": counts(records)}
    write_summary(args.out, records, meta)
    atomic_write_text(args.out / "REPORT.md", report_markdown(plan, records, meta))
    over_seeds = seeds_file(records, args.profile)
    if over_seeds is not None:
        atomic_write_text(args.out / "seeds.json", json.dumps(over_seeds, indent=1) + "\n")
    return records


def main(argv: Sequence[str] | None = None, task_fn: TaskFn | None = None) -> int:
    """The command line; ``task_fn`` replaces :func:`thesis_lib.reproduction.tasks.run_task` (tests inject failures)."""
    args = parse_args(argv)
    data_dir = (args.data_dir or default_data_dir()).expanduser()
    plan = tasks.build_plan(args.only, args.seeds, args.profile, args.out.expanduser(), data_dir,
                            default_checkpoint_dir(), checkpoint_every=args.checkpoint_every)
    added = [n for n in tasks.with_ancestors(args.only, experiments.EXPERIMENTS) if n not in args.only]
    if added:
        print(f"also {', '.join(added)}: the experiments that those asked for warm-start from")
    workers = None if args.scheduler else min(args.workers or choose_threads(), len(plan))
    print(format_plan(plan, workers, args.out), flush=True)
    if args.dry_run:
        return 0
    args.out = args.out.expanduser()
    problems = data.verify(data_dir, "mnist", full=True)  # once, every byte: the tasks trust the cheap verdicts
    if problems:
        print("error: " + "; ".join(problems) +
              f"; run `python -m thesis_lib.runtime.data fetch --data-dir {data_dir}`",
              file=sys.stderr)
        return 1
    fashion = data.verify(data_dir, "fashion_mnist") if any(t.spec.name == tasks.HEADLINES for t in plan) else []
    if fashion:  # chapter 5's anomaly AUCs score it
        print(f"error: the headline results need Fashion-MNIST ({fashion[0]}); `make data` installs it",
              file=sys.stderr)
        return 1
    records = run(args, plan, task_fn)
    bad = {k: r for k, r in records.items() if r["status"] != "done"}
    done = len(records) - len(bad)
    print(f"{done} of {len(records)} tasks done; summary in {args.out / 'summary.json'}, "
          f"report in {args.out / 'REPORT.md'}")
    for rec in bad.values():
        print(f"{rec['status'].upper()}: {rec['error']}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    restart_with_malloc_settings(["-m", "thesis_lib.reproduction.reproduce", *sys.argv[1:]])  # see runtime.process
    raise SystemExit(main())

"""The text that :mod:`thesis_lib.reproduction.reproduce` prints and writes: the plan, and ``OUT/REPORT.md``.

The report opens with the run's settings and a table of where the committed checkpoints and this run
were trained (torch, CPU, threads); then, task by task, the final losses of each training task beside
the committed checkpoint's, the likelihoods of each likelihood task beside those cached with the
committed checkpoint, and the headlines tasks (their results are in ``OUT/seeds.json``); last, the tasks
that did not finish, with their errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from thesis_lib.reproduction import experiments, tasks


def minutes(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.2f} h"


def format_plan(plan: Sequence[tasks.Task], workers: int | None, out: Path) -> str:
    """The plan in dependency order, each task's estimate, the total and the estimated wall time."""
    profile = plan[0].spec.profile if plan else "?"
    width = max([24, *(len(t.key) for t in plan)])
    lines = [f"{len(plan)} tasks, {profile} profile, into {out}", "",
             f"{'#':>3}  {'task':<{width}} {'epochs':>6} {'estimate':>10}  after"]
    for i, task in enumerate(plan, 1):
        parents = f"the {len(task.parents)} tasks it reads" if task.spec.name == tasks.HEADLINES else \
            ", ".join(task.parents)
        after = parents + (" (no committed checkpoint: a guess)" if task.guessed else "") + \
            (f" (scaled from {task.estimated_from}'s time per epoch)" if task.estimated_from else "")
        epochs = task.epochs if task.spec.trains else ""  # a likelihood or headlines task trains nothing
        lines.append(f"{i:>3}  {task.key:<{width}} {epochs:>6} {minutes(task.estimate):>10}  {after.strip()}".rstrip())
    total, chain = sum(t.estimate for t in plan), tasks.critical_path(plan)
    critical = sum(t.estimate for t in plan if t.key in chain)
    lines += ["", f"total: {minutes(total)} of work (one thread per task); "
              f"critical path {minutes(critical)} ({' -> '.join(chain)})"]
    if workers:
        lines.append(f"on {workers} worker{'s' if workers > 1 else ''}: about "
                     f"{minutes(tasks.wall_estimate(plan, workers))} (greedy schedule, longest path first)")
    return "\n".join(lines)


def _loss(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else ""


def _relative(new: Any, old: Any) -> str:
    if not isinstance(new, (int, float)) or not isinstance(old, (int, float)) or old == 0:
        return ""
    return f"{(new - old) / abs(old):+.2%}"


def _environment(plan: Sequence[tasks.Task], records: Mapping[str, Mapping[str, Any]],
                 meta: Mapping[str, Any]) -> list[str]:
    """Where the committed checkpoints were trained beside where this run trained: torch, CPU, threads."""
    def seen(values: Any) -> str:
        found = sorted({str(v) for v in values if v not in (None, "")})
        return ", ".join(found) or "none recorded"

    old = [t.committed for t in plan if t.committed and t.spec.trains]
    new = [records[t.key] for t in plan if t.spec.trains and records[t.key].get("status") == "done"]
    return ["| | committed checkpoints | this run |", "| --- | --- | --- |",
            f"| torch | {seen(c.get('torch') for c in old)} | {meta['versions']['torch']} |",
            f"| CPU | {seen(c.get('device_name') for c in old)} | {seen(r.get('cpu') for r in new)} |",
            f"| threads per run | {seen(c.get('threads') for c in old)} | {seen(r.get('threads') for r in new)} |",
            f"| subnormals flushed | not recorded | {seen(r.get('flush_denormal') for r in new)} |", ""]


def report_markdown(plan: Sequence[tasks.Task], records: Mapping[str, Mapping[str, Any]],
                    meta: Mapping[str, Any]) -> str:
    """``OUT/REPORT.md``: a header on the environment, then committed against reproduced losses per task,
    then the likelihoods (:func:`_likelihood_table`).

    A task's training time is the one its checkpoint records (all its epochs, across resumptions), so a
    task that only loaded a finished checkpoint still shows how long it trained."""
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    trained = sum(r.get("train_wall_seconds") or 0.0 for r in records.values())
    lines = ["# Reproduction report", "",
             f"- date: {meta['finished']}",
             f"- packages: {versions}",
             f"- profile {meta['profile']}, seeds {' '.join(map(str, meta['seeds']))}, {meta['workers']} workers "
             f"({meta['scheduler']}); this invocation {minutes(meta['wall_seconds'])}, training recorded in the "
             f"checkpoints {minutes(trained)} in all",
             f"- tasks: {meta['counts']['done']} done, {meta['counts']['failed']} failed, "
             f"{meta['counts']['skipped']} skipped", "", *_environment(plan, records, meta)]
    if meta["profile"] == "quick":
        lines += ["The quick profile trains a few epochs on a subset: its losses are not compared with the "
                  "committed checkpoints' (full profile).", ""]
    lines += ["| task | status | committed train | reproduced train | diff | committed test | reproduced test "
              "| diff | committed time | training time | threads |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for task in (t for t in plan if t.spec.trains):  # the quick profile's are not compared: other data
        rec, old = records[task.key], task.committed.get("final", {}) if meta["profile"] == "full" else {}
        new = rec.get("final", {})
        wall = rec.get("train_wall_seconds") or rec.get("wall_seconds")
        before = task.committed.get("wall_seconds") if meta["profile"] == "full" else None
        changed = tasks.changed_fields(task.committed, experiments.get(task.spec.name)) \
            if meta["profile"] == "full" and task.spec.name in experiments.EXPERIMENTS else []
        status = rec["status"] + (f" (recipe changed: {', '.join(changed)})" if changed else "")
        lines.append(
            f"| {task.key} | {status} | {_loss(old.get('train_loss'))} | {_loss(new.get('train_loss'))} "
            f"| {_relative(new.get('train_loss'), old.get('train_loss'))} | {_loss(old.get('test_loss'))} "
            f"| {_loss(new.get('test_loss'))} | {_relative(new.get('test_loss'), old.get('test_loss'))} "
            f"| {minutes(before) if before else ''} | {minutes(wall) if wall is not None else ''} "
            f"| {rec.get('threads', '')} |")
    lines += _likelihood_table(plan, records, meta["profile"])
    lines += _headlines_table(plan, records)
    failed = [f"- {key}: {rec['error']}" for key, rec in records.items() if rec["status"] != "done"]
    return "\n".join(lines + (["", "## Not done", "", *failed] if failed else [])) + "\n"


def _likelihood_table(plan: Sequence[tasks.Task], records: Mapping[str, Mapping[str, Any]],
                      profile: str) -> list[str]:
    """The likelihood tasks: each split's -log p(x) beside the estimate cached with the committed
    checkpoint (full profile: seed 0's, on the same images with the same k), the difference in nats, and
    the task's wall time."""
    found = [t for t in plan if t.spec.splits]
    if not found:
        return []
    lines = ["", "Importance-sampled -log p(x) in nats, the estimates chapter 5 reads:", "",
             "| task | status | split | k | images | committed | reproduced | diff | time |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for task in found:
        rec = records[task.key]
        wall = rec.get("wall_seconds")
        for split in task.spec.splits:
            new = rec.get("likelihoods", {}).get(split, {})
            old = task.committed.get("likelihoods", {}).get(split) if profile == "full" else None
            diff = f"{new['nll'] - old:+.2f}" if new and old is not None else ""
            reproduced = f"{new['nll']:.2f}" if new else ""
            committed = "" if old is None else f"{old:.2f}"
            lines.append(f"| {task.key} | {rec['status']} | {split} | {new.get('k', '')} | {new.get('images', '')} "
                         f"| {committed} | {reproduced} | {diff} | {minutes(wall) if wall is not None else ''} |")
    return lines


def _headlines_table(plan: Sequence[tasks.Task], records: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The headlines tasks: how many results each computed (they go to ``OUT/seeds.json``) and its wall time."""
    found = [records[t.key] | {"key": t.key} for t in plan if t.spec.name == tasks.HEADLINES]
    if not found:
        return []
    lines = ["", "The headline results of chapters 4 and 5, by seed in seeds.json:", "",
             "| task | status | results | time |", "| --- | --- | ---: | ---: |"]
    for rec in found:
        wall = rec.get("wall_seconds")
        lines.append(f"| {rec['key']} | {rec['status']} | {len(rec.get('headlines', {}))} "
                     f"| {minutes(wall) if wall is not None else ''} |")
    return lines

"""The reproduction's tasks: the plan that :mod:`thesis_lib.reproduction.reproduce` runs, and the function a
worker runs.

A task trains one experiment of :mod:`thesis_lib.reproduction.experiments` with one seed in one profile: in the
``full`` profile into ``OUT/seed{S}/<name>.pt`` (the folder is the task's ``checkpoint_dir``, so a warm
start finds its parent's ``<parent>.pt`` there), in the ``quick`` one into nothing. A task whose
experiment is a warm start (``Experiment.init_from``) depends on its parent's task of the same seed.
An experiment with ``likelihoods`` has a second task after its training: the importance-sampled
likelihoods that chapter 5 reads (:func:`thesis_lib.reproduction.likelihoods.nll_estimate`), cached beside the
checkpoint. In the full profile, when the plan trains every experiment that the tables over seeds read
(:data:`thesis_lib.reproduction.headlines.EXPERIMENTS_READ`), each seed ends with a headlines task
(``headlines-seed{S}``, :func:`run_headlines_task`): after those trainings and the likelihood tasks it reads,
it computes the 46 headline results of chapters 4 and 5 from that seed's checkpoints, for ``OUT/seeds.json``.

Each training task's duration is estimated from the committed checkpoint's provenance (its wall time
scaled to the epochs asked for; a small constant in the quick profile), a likelihood task's from
:data:`LIKELIHOOD_SECONDS`, a headlines task's from :data:`HEADLINES_SECONDS`; :func:`wall_estimate`
schedules the plan on ``n`` single-threaded workers, longest remaining path first, to estimate the wall time.

This module imports no dask: ``python -m thesis_lib.reproduction.reproduce --dry-run`` plans without it.
"""

from __future__ import annotations

import graphlib
import hashlib
import heapq
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from thesis_lib.reproduction import experiments, headlines, likelihoods
from thesis_lib.runtime.checkpoints import file_sha256, load_checkpoint
from thesis_lib.ground.config import PROFILES, ChapterConfig, TrainConfig
from thesis_lib.reproduction.experiments import Experiment
from thesis_lib.runtime.process import malloc_configured, tune_process
from thesis_lib.runtime.provenance import cpu_model

QUICK_TASK_SECONDS = 5.0  # estimated time of a quick-profile task (data loading included)
UNKNOWN_SECONDS_PER_EPOCH = 10.0  # estimate for an experiment without a committed checkpoint
# one likelihood estimate of Burda et al.'s network on 10,000 images at one thread, as measured on this
# project's 2-core machine: k = 5000 on the test set, k = 1000 on the validation or training images
LIKELIHOOD_SECONDS = {"test": 780.0, "validation": 180.0, "train": 180.0}
HEADLINES_SECONDS = 60.0  # one seed's headline results there, likelihoods cached (measured: 45 s, data included)
HEADLINES = "headlines"  # the name of each seed's headlines task: key headlines-seed{S}


class TaskFailed(RuntimeError):
    """A task raised: the message names the experiment and the seed; ``wall_seconds`` is how long it ran."""

    def __init__(self, message: str, wall_seconds: float = 0.0) -> None:
        super().__init__(message, wall_seconds)
        self.message, self.wall_seconds = message, wall_seconds

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class TaskSpec:
    """What a worker needs to run one task (plain values: it travels to the worker by pickle)."""

    name: str
    seed: int
    profile: str
    checkpoint_dir: str  # OUT/seed{S}, absolute; unused (nothing saved) in the quick profile
    data_dir: str
    checkpoint_every: int = 10
    threads: int = 1  # torch threads of the worker process (one per single-threaded worker)
    device: str = "auto"
    splits: tuple[str, ...] = ()  # a likelihood task: the splits to estimate on (a training task: none)

    @property
    def key(self) -> str:
        return task_key(self.name, self.seed) + (LIKELIHOOD_SUFFIX if self.splits else "")

    @property
    def trains(self) -> bool:
        """Whether the task trains an experiment (not a likelihood or a headlines task)."""
        return not self.splits and self.name != HEADLINES


@dataclass
class Task:
    spec: TaskSpec
    epochs: int
    estimate: float  # seconds
    parents: tuple[str, ...] = ()  # keys of the tasks that must finish first
    committed: dict[str, Any] = field(default_factory=dict)  # the committed checkpoint's epoch and provenance
    guessed: bool = False  # no committed checkpoint to estimate from
    estimated_from: str = ""  # no committed checkpoint of its own: the experiment whose time was scaled

    @property
    def key(self) -> str:
        return self.spec.key


LIKELIHOOD_SUFFIX = "-likelihoods"


def task_key(name: str, seed: int) -> str:
    return f"{name}-seed{seed}"


def with_ancestors(names: Sequence[str], registry: Mapping[str, Experiment]) -> list[str]:
    """``names`` and every experiment they warm-start from, in the registry's order."""
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError("--only must name experiments of thesis_lib.reproduction.experiments "
                         f"({', '.join(registry)}); "
                         f"got {', '.join(map(repr, unknown))}")
    wanted, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            if registry[name].init_from:
                todo.append(registry[name].init_from)
    return [n for n in registry if n in wanted]


def committed_record(name: str, committed_dir: Path) -> dict[str, Any]:
    """The committed checkpoint's epoch and provenance (wall time, threads, final metrics); {} if none."""
    path = committed_dir / f"{name}.pt"
    if not path.is_file():
        return {}
    ckpt = load_checkpoint(path)
    return {"epoch": int(ckpt["epoch"]), **dict(ckpt.get("provenance", {})),
            "train_config": dict(ckpt.get("train_config", {}))}


def committed_likelihoods(name: str, committed_dir: Path) -> dict[str, Any]:
    """The likelihoods cached with the committed checkpoint (``<name>.metrics.json``, when it belongs to
    that checkpoint): ``{"likelihoods": {split: -log p(x)}}`` at the largest ``k`` of the full profile."""
    path, store = committed_dir / f"{name}.pt", committed_dir / f"{name}.metrics.json"
    if not path.is_file() or not store.is_file():
        return {}
    cache = json.loads(store.read_text())
    if cache.get("checkpoint_sha256") != file_sha256(path):
        return {}
    found = {}
    for split, ks in likelihoods.FULL_KS.items():
        prefix = f"nll_{split}_k{ks[-1]}_n"
        hits = [v for k, v in cache.get("values", {}).items() if k.startswith(prefix) and k.endswith("_seed0")]
        if hits:
            found[split] = hits[0]["mean"][-1]
    return {"likelihoods": found} if found else {}


def changed_fields(committed: Mapping[str, Any], exp: Experiment) -> list[str]:
    """The fields of ``exp``'s full-profile recipe that differ from the committed checkpoint's (seed aside)."""
    old, new, default = committed.get("train_config"), exp.full.to_dict(), TrainConfig().to_dict()
    if not old:
        return []
    return sorted(k for k in new if k != "seed" and old.get(k, default[k]) != new[k])  # a field added later: default


def estimate_seconds(epochs: int, profile: str, committed: Mapping[str, Any]) -> tuple[float, bool]:
    """Estimated seconds of a task, and whether it is a guess (no committed provenance to scale)."""
    if profile == "quick":
        return QUICK_TASK_SECONDS, False
    if committed.get("wall_seconds") and committed.get("epoch"):
        return float(committed["wall_seconds"]) * epochs / committed["epoch"], False
    return UNKNOWN_SECONDS_PER_EPOCH * epochs, True


def build_plan(names: Sequence[str], seeds: Sequence[int], profile: str, out: Path, data_dir: Path,
               committed_dir: Path, registry: Mapping[str, Experiment] | None = None,
               checkpoint_every: int = 10) -> list[Task]:
    """One task per (experiment, seed), in dependency order (seed by seed, the registry's order within)."""
    registry = experiments.EXPERIMENTS if registry is None else registry
    if profile not in PROFILES:
        raise ValueError(f"--profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    names = with_ancestors(names, registry)
    records = {n: committed_record(n, committed_dir) for n in names}
    siblings = {n: _sibling(n, committed_dir, registry) for n in names if not records[n]}
    plan = []
    for seed in seeds:
        for name in _topological(names, registry):
            exp = registry[name]
            epochs = exp.config(profile, seed).epochs
            estimate, guessed = estimate_seconds(epochs, profile, records[name] or siblings[name][1])
            spec = TaskSpec(name, seed, profile, str(out.resolve() / f"seed{seed}"), str(data_dir.resolve()),
                            checkpoint_every=checkpoint_every)
            parents = (task_key(exp.init_from, seed),) if exp.init_from else ()
            plan.append(Task(spec, epochs, estimate, parents, records[name], guessed,
                             "" if records[name] or profile == "quick" else siblings[name][0]))
            if exp.likelihoods:
                seconds = QUICK_TASK_SECONDS if profile == "quick" else \
                    sum(LIKELIHOOD_SECONDS[s] for s in exp.likelihoods)
                plan.append(Task(replace(spec, splits=exp.likelihoods), 0, seconds, (spec.key,),
                                 committed_likelihoods(name, committed_dir)))
        if profile == "full" and set(headlines.EXPERIMENTS_READ) <= set(names):
            plan.append(_headlines_task(plan, seed, out, data_dir, checkpoint_every))
    return plan


def _headlines_task(plan: Sequence[Task], seed: int, out: Path, data_dir: Path, checkpoint_every: int) -> Task:
    """Seed ``seed``'s headlines task: after the trainings it reads and the likelihood tasks whose caches it reads."""
    reads = {task_key(n, seed) for n in headlines.EXPERIMENTS_READ}
    reads |= {task_key(n, seed) + LIKELIHOOD_SUFFIX for n in headlines.LIKELIHOODS_READ}
    spec = TaskSpec(HEADLINES, seed, "full", str(out.resolve() / f"seed{seed}"), str(data_dir.resolve()),
                    checkpoint_every=checkpoint_every)
    return Task(spec, 0, HEADLINES_SECONDS, tuple(t.key for t in plan if t.key in reads))


def _sibling(name: str, committed_dir: Path, registry: Mapping[str, Experiment]) -> tuple[str, dict[str, Any]]:
    """For an experiment without a committed checkpoint, another one with a committed checkpoint that
    trains the same model on the same data with the same batch size (``("", {})`` if none): its time per
    epoch is the estimate's best guess (Algorithm 2's 10,000-epoch run from its 1000-epoch run)."""
    exp = registry[name]
    for other in registry.values():
        if other.name != name and (other.spec, other.data, other.full.batch_size) == \
                (exp.spec, exp.data, exp.full.batch_size):
            found = committed_record(other.name, committed_dir)
            if found:
                return other.name, found
    return "", {}


def _topological(names: Sequence[str], registry: Mapping[str, Experiment]) -> list[str]:
    """``names`` with every parent before its children, and otherwise in the given order: at each step the
    first of them whose parent is placed (:class:`graphlib.TopologicalSorter`, which refuses a cycle)."""
    graph = {n: [registry[n].init_from] if registry[n].init_from in names else [] for n in names}
    sorter = graphlib.TopologicalSorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError as err:
        raise ValueError(f"warm starts form a cycle: {' -> '.join(reversed(err.args[1]))}") from None
    order, ready = [], set()
    while sorter.is_active():
        ready.update(sorter.get_ready())
        name = min(ready, key=list(names).index)
        ready.remove(name)
        order.append(name)
        sorter.done(name)
    return order


def bottom_levels(plan: Sequence[Task]) -> dict[str, float]:
    """Each task's longest path to the end of the graph (its estimate plus its longest chain of dependents)."""
    level: dict[str, float] = {}
    for task in reversed(plan):  # dependency order reversed: every dependent comes first
        children = [level[t.key] for t in plan if task.key in t.parents]
        level[task.key] = task.estimate + max(children, default=0.0)
    return level


def ready(plan: Sequence[Task], finished: set[str], submitted: set[str]) -> list[Task]:
    """The tasks of ``plan`` not yet submitted whose parents have all finished, longest remaining path first."""
    level = bottom_levels(plan)
    found = [t for t in plan if t.key not in submitted and all(p in finished for p in t.parents)]
    return sorted(found, key=lambda t: -level[t.key])


def critical_path(plan: Sequence[Task]) -> list[str]:
    """The keys of the chain of dependent tasks with the longest estimated time, first to last."""
    level = bottom_levels(plan)
    chain, candidates = [], [t for t in plan if not t.parents]
    while candidates:
        task = max(candidates, key=lambda t: level[t.key])
        chain.append(task.key)
        candidates = [t for t in plan if task.key in t.parents]
    return chain


def wall_estimate(plan: Sequence[Task], workers: int) -> float:
    """Seconds that ``plan`` takes on ``workers`` workers, one task each at a time, scheduled greedily:
    whenever a worker is free it takes the ready task with the longest remaining path."""
    level = bottom_levels(plan)
    finish: dict[str, float] = {}
    free = [0.0] * max(1, workers)  # times at which each worker becomes free (a heap)
    pending = list(plan)
    while pending:
        now = heapq.heappop(free)
        ready = [t for t in pending if all(p in finish for p in t.parents)]
        start = [max([now, *(finish[p] for p in t.parents)]) for t in ready]
        earliest = min(start)
        # among the tasks that can start soonest, the one on the longest path
        i = max((j for j, s in enumerate(start) if s == earliest), key=lambda j: level[ready[j].key])
        finish[ready[i].key] = earliest + ready[i].estimate
        pending.remove(ready[i])
        heapq.heappush(free, finish[ready[i].key])
    return max(finish.values(), default=0.0)


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over the model's parameters and buffers (names and bytes, in state-dict order): equal
    exactly when the weights are bit-identical, unlike the checkpoint file's (which holds a date)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _resume_epoch(path: Path | None) -> int:
    """The epoch of an unfinished checkpoint the task starts from (0: none, it starts from scratch)."""
    return int(load_checkpoint(path)["epoch"]) if path is not None and path.is_file() else 0


def run_task(spec: TaskSpec, *parents: Mapping[str, Any]) -> dict[str, Any]:
    """Train (or load, when finished) one task's experiment; what the summary records of it.

    Runs in a worker: sets the process up first (:func:`~thesis_lib.runtime.process.tune_process`, before torch
    computes anything), then :func:`thesis_lib.reproduction.experiments.run`, which resumes an unfinished checkpoint.
    ``parents`` are the results of the tasks it depends on (they only order it). Raises
    :class:`TaskFailed`, naming the experiment and the seed, when anything in it raises. A likelihood
    task (``spec.splits``) goes to :func:`run_likelihood_task`, a headlines task to :func:`run_headlines_task`.
    """
    if spec.splits:
        return run_likelihood_task(spec)
    if spec.name == HEADLINES:
        return run_headlines_task(spec)
    process = tune_process(spec.threads)
    t0 = time.perf_counter()
    try:
        exp = experiments.get(spec.name)
        cfg = ChapterConfig.from_parameters(chapter=exp.chapter, profile=spec.profile, seed=spec.seed,
                                            device=spec.device, data_dir=spec.data_dir,
                                            checkpoint_dir=spec.checkpoint_dir)
        path = experiments.checkpoint_path(exp, cfg)
        resumed_from = _resume_epoch(path)
        result = experiments.run(spec.name, cfg, checkpoint_every=spec.checkpoint_every)
    except Exception as err:
        raise TaskFailed(f"{spec.name} (seed {spec.seed}): {type(err).__name__}: {err}",
                         time.perf_counter() - t0) from err
    prov = result.provenance
    return {
        "name": spec.name, "seed": spec.seed, "status": "done", "trained": result.trained,
        "wall_seconds": time.perf_counter() - t0, "train_wall_seconds": prov.get("wall_seconds"),
        "epochs": len(result.history.metrics.get("train_loss", [])), "resumed_from_epoch": resumed_from,
        "final": dict(prov.get("final", {})), "threads": prov.get("threads", torch.get_num_threads()),
        "cpu": cpu_model(), "device": prov.get("device"), "host": os.uname().nodename, "pid": os.getpid(),
        "flush_denormal": process["flush_denormal"], "malloc_at_start": malloc_configured(),
        "checkpoint": str(path) if path is not None else None,
        "sha256": file_sha256(path) if path is not None else None,
        "weights_sha256": weights_sha256(result.model),
    }


def run_likelihood_task(spec: TaskSpec) -> dict[str, Any]:
    """Estimate the likelihoods of one task's trained model on ``spec.splits``; what the summary records.

    :func:`thesis_lib.reproduction.likelihoods.nll_estimate` caches each estimate beside the checkpoint (full profile),
    where the chapter finds it; in the quick profile it trains the model again and caches nothing. Raises
    :class:`TaskFailed` like :func:`run_task`."""
    process = tune_process(spec.threads)
    t0 = time.perf_counter()
    estimates: dict[str, dict[str, Any]] = {}
    try:
        exp = experiments.get(spec.name)
        cfg = ChapterConfig.from_parameters(chapter=exp.chapter, profile=spec.profile, seed=spec.seed,
                                            device=spec.device, data_dir=spec.data_dir,
                                            checkpoint_dir=spec.checkpoint_dir)
        tensors = experiments.load_data(exp, cfg)
        for split in spec.splits:
            est = likelihoods.nll_estimate(spec.name, cfg, split, tensors)
            estimates[split] = {"nll": est["mean"][-1], "stderr": est["stderr"][-1], "k": est["ks"][-1],
                                "images": est["images"]}
    except Exception as err:
        raise TaskFailed(f"{spec.name} (seed {spec.seed}), likelihoods: {type(err).__name__}: {err}",
                         time.perf_counter() - t0) from err
    return {"name": spec.name, "seed": spec.seed, "status": "done", "splits": list(spec.splits),
            "likelihoods": estimates, "wall_seconds": time.perf_counter() - t0,
            "threads": torch.get_num_threads(), "cpu": cpu_model(), "host": os.uname().nodename,
            "pid": os.getpid(), "flush_denormal": process["flush_denormal"]}


def run_headlines_task(spec: TaskSpec) -> dict[str, Any]:
    """The headline results of chapters 4 and 5 from the checkpoints in ``spec.checkpoint_dir`` and the likelihoods
    its parents cached (:func:`thesis_lib.reproduction.headlines.headlines`), under ``"headlines"`` in what the
    summary records. Raises :class:`TaskFailed` like :func:`run_task`."""
    process = tune_process(spec.threads)
    t0 = time.perf_counter()
    try:
        cfg = ChapterConfig.from_parameters(chapter="05", profile=spec.profile, seed=spec.seed, device=spec.device,
                                            data_dir=spec.data_dir, checkpoint_dir=spec.checkpoint_dir)
        results = headlines.headlines(cfg)
    except Exception as err:
        raise TaskFailed(f"{spec.name} (seed {spec.seed}): {type(err).__name__}: {err}",
                         time.perf_counter() - t0) from err
    return {"name": spec.name, "seed": spec.seed, "status": "done", "headlines": results,
            "wall_seconds": time.perf_counter() - t0, "threads": torch.get_num_threads(), "cpu": cpu_model(),
            "host": os.uname().nodename, "pid": os.getpid(), "flush_denormal": process["flush_denormal"]}

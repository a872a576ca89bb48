"""Results over training seeds: computed by the reproduction, shown in the book.

``python -m thesis_lib.reproduction.reproduce`` computes the headline results of chapters 4 and 5 for each
seed from that seed's checkpoints (:mod:`thesis_lib.reproduction.headlines`) and writes them to
``OUT/seeds.json``: ``{"profile", "seeds", "results": {name: {seed: value}}, "weights_sha256":
{experiment: {seed: digest}}}``, the SHA-256 of the weights the results came from. The committed run's file,
``reproduction/runs/seeds.json``, is what the chapters read with :func:`load`; they show each result's
:func:`spread` over the seeds in a table (:func:`table`). No chapter writes it.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from thesis_lib.ground.files import record_read
from thesis_lib.ground.paths import REPO_ROOT

SEEDS_FILE = REPO_ROOT / "reproduction" / "runs" / "seeds.json"


def load(path: Path | None = None) -> dict[str, dict[int, float]]:
    """The results in ``seeds.json``: name -> seed -> value. The file is recorded as read by the chapter (its
    SHA-256 enters the chapter's cache key)."""
    path = SEEDS_FILE if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results over seeds at {path}: `make reproduce ARGS=\"--seeds 0 1 2 --skip "
                                "ae_thesis_10000\"` trains the models and computes the results for each seed")
    record_read(path)
    raw = json.loads(path.read_text())
    return {name: {int(s): float(v) for s, v in by_seed.items()} for name, by_seed in raw.get("results", {}).items()}


@dataclass(frozen=True)
class Spread:
    """A result over seeds: how many, mean, sample standard deviation (nan for one seed), min and max."""

    n: int
    mean: float
    sd: float
    low: float
    high: float


def spread(values: Mapping[int, float] | Sequence[float]) -> Spread:
    """Mean, sample standard deviation (``n - 1`` in the denominator) and range of ``values``."""
    xs = list(values.values()) if isinstance(values, Mapping) else list(values)
    sd = statistics.stdev(xs) if len(xs) > 1 else math.nan
    return Spread(len(xs), statistics.fmean(xs), sd, min(xs), max(xs))


def table(results: Mapping[str, Mapping[int, float]], rows: Sequence[tuple[str, str]], digits: int = 4,
          scale: float = 1.0) -> str:
    """A text table, one row per ``(label, name)``: the mean ± standard deviation over the seeds, the
    range, the number of seeds, and each seed's value; every number times ``scale``, with ``digits``
    decimals. A name that no seed recorded is refused, naming it."""
    missing = [name for _, name in rows if name not in results]
    if missing:
        raise KeyError(f"rows name results that seeds.json does not hold: {', '.join(missing)}")
    seeds = sorted({s for _, name in rows for s in results[name]})
    width = max(len(label) for label, _ in rows)
    head = f"{'':<{width}}  {'mean ± sd':>{2 * digits + 10}}  {'min':>{digits + 4}}  {'max':>{digits + 4}}  n  " + \
        "  ".join(f"{f'seed {s}':>{digits + 4}}" for s in seeds)
    lines = [head.rstrip()]
    for label, name in rows:
        s = spread(results[name])
        sd = "n/a" if math.isnan(s.sd) else f"{scale * s.sd:.{digits}f}"
        cells = [f"{scale * results[name][seed]:{digits + 4}.{digits}f}" if seed in results[name] else
                 f"{'':>{digits + 4}}" for seed in seeds]
        lines.append(f"{label:<{width}}  {f'{scale * s.mean:.{digits}f} ± {sd}':>{2 * digits + 10}}  "
                     f"{scale * s.low:{digits + 4}.{digits}f}  {scale * s.high:{digits + 4}.{digits}f}  {s.n}  "
                     + "  ".join(cells))
    return "\n".join(line.rstrip() for line in lines)

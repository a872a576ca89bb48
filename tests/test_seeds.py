"""Results over seeds (thesis_lib.publishing.seeds): the spread checked against numpy, the file read back, the
table, and the refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from thesis_lib.publishing import seeds
from thesis_lib.publishing.reads import READS_LOG_ENV, log_reads


def test_spread_is_numpy_mean_sample_sd_and_range():
    values = {0: 0.01712, 1: 0.01698, 2: 0.01741}
    s = seeds.spread(values)
    xs = np.array(list(values.values()))
    assert s.n == 3 and s.mean == pytest.approx(xs.mean(), rel=1e-14)
    assert s.sd == pytest.approx(xs.std(ddof=1), rel=1e-12)  # the sample standard deviation
    assert (s.low, s.high) == (xs.min(), xs.max())
    one = seeds.spread([5.0])
    assert one.n == 1 and one.mean == 5.0 and math.isnan(one.sd)


def _write(path, results):
    path.write_text(json.dumps({"profile": "full", "seeds": ["0", "1"], "results": results,
                                "weights_sha256": {"ae_thesis": {"0": "ab" * 32}}, "note": "how it was made"}))
    return path


def test_load_keeps_the_results_by_seed_and_records_the_read(tmp_path, monkeypatch):
    log = tmp_path / "reads.txt"
    monkeypatch.setattr("thesis_lib.ground.files._READ_HOOKS", [])
    log_reads({READS_LOG_ENV: str(log)})
    path = _write(tmp_path / "seeds.json", {"mse": {"0": 0.5, "1": 0.25}, "active_units": {"0": 16}})
    assert seeds.load(path) == {"mse": {0: 0.5, 1: 0.25}, "active_units": {0: 16.0}}
    assert type(seeds.load(path)["active_units"][0]) is float
    assert str(path) in log.read_text()
    with pytest.raises(FileNotFoundError, match="make reproduce"):
        seeds.load(tmp_path / "absent.json")


def test_the_table_gives_mean_sd_range_and_each_seed():
    results = {"a": {0: 1.0, 1: 3.0}, "b": {0: 2.0}}
    text = seeds.table(results, [("first", "a"), ("second", "b")], digits=2)
    head, first, second = text.splitlines()
    assert head.split() == ["mean", "±", "sd", "min", "max", "n", "seed", "0", "seed", "1"]
    assert first.split() == ["first", "2.00", "±", f"{math.sqrt(2):.2f}", "1.00", "3.00", "2", "1.00", "3.00"]
    assert second.split() == ["second", "2.00", "±", "n/a", "2.00", "2.00", "1", "2.00"]  # seed 1 missing
    assert seeds.table(results, [("a", "a")], digits=1, scale=10).splitlines()[1].split()[1] == "20.0"
    with pytest.raises(KeyError, match="does not hold: c"):
        seeds.table(results, [("c", "c")])

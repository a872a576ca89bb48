"""The reproduction command: its plan, its estimates, its refusals, and its runs on a local Dask cluster
(a quick sweep, a failing task, a worker killed in the middle of a task)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from thesis_lib.runtime import data, runs
from thesis_lib.publishing.seeds import load as load_seeds
from thesis_lib.reproduction import experiments, headlines, likelihoods, reproduce, tasks
from thesis_lib.runtime.checkpoints import file_sha256, load_checkpoint
from thesis_lib.ground.config import ChapterConfig, ModelSpec, TrainConfig
from thesis_lib.reproduction.experiments import Experiment
from thesis_lib.ground.paths import default_checkpoint_dir

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TINY = ModelSpec("fc_autoencoder", {"widths": [784, 32, 4]})
TINY_RUN = TrainConfig(epochs=4, batch_size=256, lr=1e-3, train_limit=2048)
#: Experiments that exist only in these tests; the workers get them through the task functions below.
TEST_EXPERIMENTS = {
    "broken": Experiment("broken", "04", ModelSpec("fc_autoencoder", {"widths": [10, 2]}), TrainConfig(epochs=1),
                         about="a network for 10 inputs trained on 784: its first batch raises"),
    "broken_child": Experiment("broken_child", "04", ModelSpec("fc_autoencoder", {"widths": [10, 2]}),
                               TrainConfig(epochs=1), init_from="broken"),
    "tiny_killed": Experiment("tiny_killed", "04", TINY, TINY_RUN),
    "tiny_ref": Experiment("tiny_ref", "04", TINY, TINY_RUN),
    "tiny_vae": Experiment("tiny_vae", "05", ModelSpec("vae", {"input_dim": 784, "hidden": [32], "latent_dim": 2}),
                           TrainConfig(epochs=1, batch_size=256, loss="elbo", binarize=True, validation=512),
                           likelihoods=("test", "validation")),
}


def _need_mnist() -> None:
    if data.verify(ChapterConfig.from_parameters(chapter="04").data_dir):
        pytest.skip("MNIST not fetched")


def _plan(names, seeds=(0,), profile="full", out=Path("out"), registry=None):
    return tasks.build_plan(names, list(seeds), profile, out, Path("data"), default_checkpoint_dir(),
                            registry=registry)


# --- the plan ---------------------------------------------------------------------------------------------

def test_the_order_puts_parents_first_and_otherwise_keeps_the_given_one_and_refuses_a_cycle():
    spec, run = TINY, TrainConfig(epochs=1)
    reg = {"a": Experiment("a", "04", spec, run, init_from="c"), "b": Experiment("b", "04", spec, run),
           "c": Experiment("c", "04", spec, run)}
    assert tasks._topological(["a", "b", "c"], reg) == ["b", "c", "a"]  # b is placed before a's parent c
    assert tasks._topological(["c", "a", "b"], reg) == ["c", "a", "b"]
    assert tasks._topological(["a", "b"], reg) == ["a", "b"]  # a parent not planned is not waited for
    reg["c"] = Experiment("c", "04", spec, run, init_from="a")
    with pytest.raises(ValueError, match="warm starts form a cycle: (a -> c -> a|c -> a -> c)"):
        tasks._topological(["a", "b", "c"], reg)


def test_the_plan_puts_each_warm_start_after_its_parent_of_the_same_seed(tmp_path):
    plan = _plan(list(experiments.EXPERIMENTS), seeds=(0, 1), out=tmp_path)
    keys = [t.key for t in plan]
    n_likelihoods = sum(bool(e.likelihoods) for e in experiments.EXPERIMENTS.values())
    assert n_likelihoods == 4 and len(set(keys)) == len(keys)
    assert len(plan) == 2 * (len(experiments.EXPERIMENTS) + n_likelihoods + 1)  # + each seed's headlines task
    for seed in (0, 1):
        for child in ("vae_nll_long", "iwae_nll_long"):
            assert keys.index(f"vae_nll-seed{seed}") < keys.index(f"{child}-seed{seed}")
            task = plan[keys.index(f"{child}-seed{seed}")]
            assert task.parents == (f"vae_nll-seed{seed}",)
            assert task.spec.checkpoint_dir == str(tmp_path.resolve() / f"seed{seed}")
    assert all(not t.parents for t in plan if t.spec.trains and experiments.get(t.spec.name).init_from == "")
    # asking for a warm start brings its parent along, each followed by the likelihoods chapter 5 reads
    assert [t.key for t in _plan(["iwae_nll_long"])] == ["vae_nll-seed0", "vae_nll-seed0-likelihoods",
                                                         "iwae_nll_long-seed0", "iwae_nll_long-seed0-likelihoods"]


def test_each_model_whose_likelihoods_chapter_5_reads_is_followed_by_a_likelihood_task(tmp_path):
    plan = {t.key: t for t in _plan(list(experiments.EXPERIMENTS), seeds=(2,), out=tmp_path)}
    for name, exp in experiments.EXPERIMENTS.items():
        task = plan.get(f"{name}-seed2-likelihoods")
        assert (task is not None) == bool(exp.likelihoods)
        if task is not None:
            assert task.parents == (f"{name}-seed2",) and task.spec.splits == exp.likelihoods
            assert task.spec.checkpoint_dir == plan[f"{name}-seed2"].spec.checkpoint_dir
            assert task.estimate == sum(tasks.LIKELIHOOD_SECONDS[s] for s in exp.likelihoods)
    # chapter 5 chooses among the four runs on validation, and sets the two final ones beside their training images
    assert {n: e.likelihoods for n, e in experiments.EXPERIMENTS.items() if e.likelihoods} == {
        "vae_nll": ("test", "validation"), "vae_nll_decay": ("test", "validation"),
        "vae_nll_long": ("test", "validation", "train"), "iwae_nll_long": ("test", "validation", "train")}
    quick = _plan(["vae_nll"], profile="quick")
    assert [t.estimate for t in quick] == [tasks.QUICK_TASK_SECONDS] * 2


def test_each_seed_ends_with_a_headlines_task_after_the_models_and_likelihoods_it_reads(tmp_path):
    plan = _plan(list(experiments.EXPERIMENTS), seeds=(0, 1), out=tmp_path)
    keys = [t.key for t in plan]
    for seed in (0, 1):
        task = plan[keys.index(f"headlines-seed{seed}")]
        reads = {f"{n}-seed{seed}" for n in headlines.EXPERIMENTS_READ} | \
            {f"{n}-seed{seed}-likelihoods" for n in headlines.LIKELIHOODS_READ}
        assert set(task.parents) == reads and len(task.parents) == len(reads) == 24
        assert all(keys.index(p) < keys.index(task.key) for p in task.parents)  # dependency order
        assert not task.spec.trains and task.estimate == tasks.HEADLINES_SECONDS
        assert task.spec.checkpoint_dir == str(tmp_path.resolve() / f"seed{seed}") and task.spec.profile == "full"
    assert keys[-1] == "headlines-seed1" and keys.index("headlines-seed0") < keys.index("ae_thesis-seed1")
    assert "ae_thesis_10000-seed0" not in plan[keys.index("headlines-seed0")].parents  # not read: not waited for
    # what the tables over seeds read is left out of these runs
    three_seeds = [n for n in experiments.EXPERIMENTS if n not in ("ae_thesis_10000", "canvas_ae", "vae_2d")]
    assert "headlines-seed0" in [t.key for t in _plan(three_seeds)]
    for names, profile in ((["vae_standard", "ae_thesis"], "full"), ([n for n in experiments.EXPERIMENTS
                                                                    if n != "vae_without_9"], "full"),
                           (list(experiments.EXPERIMENTS), "quick")):
        assert not [t for t in _plan(names, profile=profile) if t.spec.name == tasks.HEADLINES]


def test_a_headlines_task_computes_the_results_from_its_seeds_checkpoints(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(tasks, "tune_process", lambda threads: {"flush_denormal": True})  # this process stays
    monkeypatch.setattr(headlines, "headlines", lambda cfg: seen.append(cfg) or {"fc_test_mse": 0.03})
    spec = tasks.TaskSpec(tasks.HEADLINES, 1, "full", str(tmp_path / "seed1"), str(tmp_path / "data"))
    rec = tasks.run_task(spec, {"status": "done"})
    assert rec["headlines"] == {"fc_test_mse": 0.03} and rec["name"] == "headlines" and rec["seed"] == 1
    (cfg,) = seen
    assert (cfg.profile, cfg.seed, cfg.checkpoint_dir, cfg.data_dir) == ("full", 1, tmp_path / "seed1",
                                                                          tmp_path / "data")

    def missing(cfg):
        raise FileNotFoundError("no vae_nll.pt")

    monkeypatch.setattr(headlines, "headlines", missing)
    with pytest.raises(tasks.TaskFailed, match=r"^headlines \(seed 1\): FileNotFoundError: no vae_nll.pt"):
        tasks.run_task(spec)


def test_seeds_json_holds_each_finished_seeds_results_and_the_weights_of_every_experiment():
    records = {"a-seed0": {"name": "a", "seed": 0, "status": "done", "weights_sha256": "ab"},
               "a-seed1": {"name": "a", "seed": 1, "status": "done", "weights_sha256": "cd"},
               "a-seed0-likelihoods": {"name": "a", "seed": 0, "status": "done", "likelihoods": {}},
               "a-seed2": {"name": "a", "seed": 2, "status": "failed"},
               "headlines-seed2": {"name": "headlines", "seed": 2, "status": "skipped"}}
    for seed, found in ((0, {"m": 0.5, "n": 2.0}), (1, {"m": 0.25, "n": 3.0})):
        records[f"headlines-seed{seed}"] = {"name": "headlines", "seed": seed, "status": "done", "headlines": found}
    assert reproduce.seeds_file(records, "full") == {
        "profile": "full", "seeds": ["0", "1"], "results": {"m": {"0": 0.5, "1": 0.25}, "n": {"0": 2.0, "1": 3.0}},
        "weights_sha256": {"a": {"0": "ab", "1": "cd"}}}
    assert reproduce.seeds_file({k: v for k, v in records.items() if not k.startswith("headlines")}, "full") is None


def test_the_committed_likelihoods_are_read_only_from_a_cache_of_that_checkpoint(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"weights")
    assert tasks.committed_likelihoods("m", tmp_path) == {}  # no cache
    values = {"nll_test_k5000_n10000_seed0": {"mean": [90.0, 88.5]},
              "nll_test_k5000_n10000_seed1": {"mean": [91.0, 89.5]},  # another sampling seed
              "nll_validation_k1000_n10000_seed0": {"mean": [91.0, 89.25]},
              "nll_train_k10_n300_seed0": {"mean": [80.0]}}  # not the full profile's k
    store = tmp_path / "m.metrics.json"
    store.write_text(json.dumps({"checkpoint_sha256": file_sha256(tmp_path / "m.pt"), "values": values}))
    assert tasks.committed_likelihoods("m", tmp_path) == {"likelihoods": {"test": 88.5, "validation": 89.25}}
    (tmp_path / "m.pt").write_bytes(b"retrained")  # the cache belongs to the old weights
    assert tasks.committed_likelihoods("m", tmp_path) == {}


def test_a_task_is_ready_once_its_parents_finished_and_ready_tasks_go_longest_path_first(tmp_path):
    """The first tasks submitted start at once; a warm start waits on the scheduler's side for its parent,
    so that it goes to whichever worker is free when it becomes ready."""
    plan = _plan(list(experiments.EXPERIMENTS), seeds=(0, 1), out=tmp_path)
    level = tasks.bottom_levels(plan)
    first = tasks.ready(plan, set(), set())
    assert {t.key for t in first} == {t.key for t in plan if not t.parents}
    assert [level[t.key] for t in first] == sorted((level[t.key] for t in first), reverse=True)
    assert level[first[0].key] == level[tasks.critical_path(plan)[0]]  # the head of a critical path
    assert level["vae_nll-seed0"] > level["vae_nll_decay-seed0"]  # a chain of warm starts counts in full
    submitted = {t.key for t in first}
    assert tasks.ready(plan, {"ae_thesis-seed0"}, submitted) == []  # nothing waits on it
    after = tasks.ready(plan, {"vae_nll-seed0"}, submitted)
    assert [t.key for t in after] == ["iwae_nll_long-seed0", "vae_nll_long-seed0",  # longer first
                                      "vae_nll-seed0-likelihoods"]
    assert tasks.ready(plan, {"vae_nll-seed0"}, submitted | {"iwae_nll_long-seed0"})[0].key == "vae_nll_long-seed0"


def test_estimates_come_from_the_committed_provenance():
    if not (default_checkpoint_dir() / "vae_standard.pt").is_file():
        pytest.skip("no committed checkpoint")
    prov = load_checkpoint(default_checkpoint_dir() / "linear_ae_2.pt")["provenance"]
    (full,) = _plan(["linear_ae_2"])
    assert full.estimate == pytest.approx(prov["wall_seconds"]) and not full.guessed
    assert full.committed["final"] == prov["final"]
    half = {"linear_ae_2": experiments.EXPERIMENTS["linear_ae_2"]}
    half["linear_ae_2"] = Experiment("linear_ae_2", "04", half["linear_ae_2"].spec,
                                     half["linear_ae_2"].full.replace(epochs=50))
    assert _plan(["linear_ae_2"], registry=half)[0].estimate == pytest.approx(prov["wall_seconds"] / 2)
    assert _plan(["linear_ae_2"], profile="quick")[0].estimate == tasks.QUICK_TASK_SECONDS
    (guess,) = _plan(["tiny_ref"], registry=TEST_EXPERIMENTS)
    assert guess.guessed and guess.estimate == tasks.UNKNOWN_SECONDS_PER_EPOCH * 4


def test_an_experiment_without_a_checkpoint_is_estimated_from_one_of_the_same_model(tmp_path):
    # no checkpoint of its own, but one of the same model, data and batch size: its time per epoch, scaled
    committed = default_checkpoint_dir() / "ae_thesis.pt"
    if not committed.is_file():
        pytest.skip("no committed checkpoint")
    (tmp_path / "ae_thesis.pt").symlink_to(committed)
    thesis = tasks.committed_record("ae_thesis", tmp_path)
    (long,) = tasks.build_plan(["ae_thesis_10000"], [0], "full", tmp_path / "out", Path("data"), tmp_path)
    assert long.estimated_from == "ae_thesis" and not long.guessed and long.committed == {}
    assert long.estimate == pytest.approx(thesis["wall_seconds"] * 10)


def test_wall_time_estimate_on_a_small_graph():
    def task(name, seconds, parents=()):
        spec = tasks.TaskSpec(name, 0, "full", "out", "data")
        return tasks.Task(spec, 1, seconds, tuple(f"{p}-seed0" for p in parents))

    plan = [task("a", 10), task("c", 5), task("d", 5), task("b", 10, ["a"])]
    assert tasks.critical_path(plan) == ["a-seed0", "b-seed0"]
    assert tasks.wall_estimate(plan, 1) == 30
    assert tasks.wall_estimate(plan, 2) == 20  # a then b on one worker, c and d on the other
    assert tasks.wall_estimate(plan, 8) == 20  # the critical path bounds it


@pytest.mark.parametrize("argv, named", [
    (["--profile", "medium"], "--profile"),
    (["--seeds", "-1"], "--seeds"),
    (["--seeds", "one"], "--seeds"),
    (["--only", "gan"], "--only"),
    (["--workers", "0"], "--workers"),
    (["--checkpoint-every", "0"], "--checkpoint-every"),
    (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "--workers"),
    (["--out", str(default_checkpoint_dir())], "--overwrite-committed"),
    (["--out", str(default_checkpoint_dir() / "seed0")], "--overwrite-committed"),
    (["--out", str(default_checkpoint_dir()), "--overwrite-committed", "--seeds", "1"], "--overwrite-committed"),
    (["--out", "elsewhere", "--overwrite-committed"], "--overwrite-committed"),
])
def test_bad_arguments_are_refused_naming_the_parameter(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_:
        reproduce.parse_args(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and named in err
    if named == "--only":
        assert "vae_standard" in err and "gan" in err  # the allowed values and the bad one
    if named == "--profile":
        assert "quick" in err and "full" in err


def test_skip_leaves_experiments_out_but_not_a_warm_starts_parent(capsys):
    args = reproduce.parse_args(["--skip", "ae_thesis_10000", "canvas_ae", "--seeds", "1", "2"])
    assert args.only == [n for n in experiments.EXPERIMENTS if n not in ("ae_thesis_10000", "canvas_ae")]
    assert reproduce.parse_args(["--only", "vae_standard", "ae_thesis", "--skip", "ae_thesis"]).only == \
        ["vae_standard"]
    for argv, message in ((["--skip", "vae_nll"], "--skip must not name an experiment that another one "
                                                  "warm-starts from; got vae_nll"),
                          (["--skip", "nope"], "--skip must name experiments among"),
                          (["--only", "ae_thesis", "--skip", "ae_thesis"], "--skip leaves no experiment to run")):
        with pytest.raises(SystemExit):
            reproduce.parse_args(argv)
        assert message in capsys.readouterr().err


def test_dry_run_prints_the_whole_plan_without_importing_dask():
    script = ("import sys; from thesis_lib.reproduction import reproduce; "
              "rc = reproduce.main(['--dry-run', '--workers', '2']); "
              "print('DASK', [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]); sys.exit(rc)")
    done = subprocess.run([PY, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    n_likelihoods = sum(bool(e.likelihoods) for e in experiments.EXPERIMENTS.values())
    assert "DASK []" in out and f"{len(experiments.EXPERIMENTS) + n_likelihoods + 1} tasks, full profile" in out
    lines = re.findall(r"^ *\d+  (\S+-seed\d+(?:-likelihoods)?) ", out, flags=re.M)
    expected = [key for name, exp in experiments.EXPERIMENTS.items()  # the registry is in dependency order
                for key in (f"{name}-seed0", *([f"{name}-seed0-likelihoods"] if exp.likelihoods else []))]
    assert lines == [*expected, "headlines-seed0"]
    assert re.search(r"^ *\d+  headlines-seed0 +1\.0 min  the 24 tasks it reads$", out, flags=re.M)
    assert "total:" in out and "critical path" in out and "on 2 workers: about" in out


def test_make_reproduce_dry_run_runs_the_command_with_dry_run():
    done = subprocess.run(["make", "--no-print-directory", "reproduce", "--dry-run",
                           "ARGS=--only vae_standard --workers 1"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert '-m thesis_lib.reproduction.reproduce --out "reproduction/runs" --dry-run --only vae_standard' in done.stdout
    assert "1 tasks, full profile" in done.stdout and "on 1 worker: about" in done.stdout
    assert 'book/reproduction.py --runs "reproduction/runs"' in done.stdout  # printed, not run


# --- runs on a local cluster --------------------------------------------------------------------------------

def test_a_quick_sweep_on_two_single_threaded_workers(tmp_path):
    _need_mnist()
    env = {k: v for k, v in os.environ.items() if k != "THESIS_NO_RESTART"}
    done = subprocess.run([PY, "-m", "thesis_lib.reproduction.reproduce",
                           "--profile", "quick", "--only", "vae_standard",
                           "linear_ae_2", "--workers", "2", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 of 2 tasks done" in done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["counts"] == {"done": 2, "failed": 0, "skipped": 0} and summary["workers"] == 2
    for key in ("linear_ae_2-seed0", "vae_standard-seed0"):
        rec = summary["tasks"][key]
        assert rec["status"] == "done" and rec["trained"] and rec["checkpoint"] is None
        assert rec["threads"] == 1 and rec["flush_denormal"] and rec["malloc_at_start"]  # tune_process, MALLOC_ENV
        assert rec["final"]["train_loss"] > 0 and len(rec["weights_sha256"]) == 64
    report = (tmp_path / "REPORT.md").read_text()
    assert "| linear_ae_2-seed0 | done |" in report and "| vae_standard-seed0 | done |" in report
    torch_version = importlib.metadata.version("torch")
    assert "numpy" in report and "thesis_lib" in report and f"torch {torch_version}" in report
    # the environment beside the committed checkpoints'
    committed = {str(tasks.committed_record(n, default_checkpoint_dir()).get("torch")) for n in ("vae_standard",
                                                                                               "linear_ae_2")}
    assert f"| torch | {', '.join(sorted(committed))} | {torch_version} |" in report
    assert "| threads per run |" in report and "| 1 |" in report
    assert not list(tmp_path.glob("seed0/*.pt"))  # the quick profile saves no weights


def _with_test_experiments(spec, *parents):
    """The task function of the tests' runs: the test experiments exist in the worker too."""
    experiments.EXPERIMENTS.update(TEST_EXPERIMENTS)
    return tasks.run_task(spec, *parents)


def _killed_once_after_epoch_2(spec, *parents):
    """Like :func:`_with_test_experiments`, but ``tiny_killed``'s first attempt kills its worker process
    right after saving epoch 2 (a marker file remembers that it happened)."""
    experiments.EXPERIMENTS.update(TEST_EXPERIMENTS)
    marker = Path(spec.checkpoint_dir).parent / "killed.pid"
    if spec.name == "tiny_killed" and not marker.exists():
        save = runs.save_checkpoint

        def save_then_die(path, checkpoint):
            out = save(path, checkpoint)
            if checkpoint["epoch"] == 2:
                marker.write_text(str(os.getpid()))
                os._exit(1)
            return out

        runs.save_checkpoint = save_then_die
    return tasks.run_task(spec, *parents)


@pytest.fixture
def test_experiments(monkeypatch):
    """The test experiments in this process's registry; the task functions pickled by value for the workers."""
    import cloudpickle

    for name, exp in TEST_EXPERIMENTS.items():
        monkeypatch.setitem(experiments.EXPERIMENTS, name, exp)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_a_failing_task_is_reported_and_its_dependent_skipped(tmp_path, capsys, test_experiments):
    _need_mnist()
    argv = ["--profile", "quick", "--only", "broken_child", "linear_ae_2", "--workers", "2", "--out", str(tmp_path)]
    environ = dict(os.environ)
    assert reproduce.main(argv, task_fn=_with_test_experiments) == 1
    assert dict(os.environ) == environ  # the nanny's pre-spawn settings do not leak into this process
    err = capsys.readouterr().err
    assert "FAILED: broken (seed 0): RuntimeError: mat1 and mat2 shapes cannot be multiplied" in err
    assert "SKIPPED: broken_child (seed 0) not run: it depends on broken-seed0" in err
    summary = json.loads((tmp_path / "summary.json").read_text())
    status = {key: rec["status"] for key, rec in summary["tasks"].items()}
    assert status == {"broken-seed0": "failed", "broken_child-seed0": "skipped", "linear_ae_2-seed0": "done"}
    failed = summary["tasks"]["broken-seed0"]
    assert failed["error"].startswith("broken (seed 0): RuntimeError") and failed["wall_seconds"] > 0
    assert "run_task" in failed["traceback"]
    assert summary["tasks"]["linear_ae_2-seed0"]["final"]["test_loss"] > 0
    assert "broken-seed0 | failed" in (tmp_path / "REPORT.md").read_text()


def test_a_likelihood_task_estimates_what_the_chapter_would_once_its_model_is_trained(tmp_path, test_experiments):
    _need_mnist()
    argv = ["--profile", "quick", "--only", "tiny_vae", "--workers", "2", "--out", str(tmp_path)]
    assert reproduce.main(argv, task_fn=_with_test_experiments) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    rec = summary["tasks"]["tiny_vae-seed0-likelihoods"]
    assert rec["status"] == "done" and rec["splits"] == ["test", "validation"] and rec["parents"] == ["tiny_vae-seed0"]
    cfg = ChapterConfig.from_parameters(chapter="05", profile="quick")
    report = (tmp_path / "REPORT.md").read_text()
    for split, images in (("test", likelihoods.QUICK_IMAGES), ("validation", 256)):  # quick: 2048 / 8 held out
        est = rec["likelihoods"][split]
        assert est["k"] == likelihoods.QUICK_KS[-1] and est["images"] == images
        assert est["nll"] == likelihoods.nll_estimate("tiny_vae", cfg, split)["mean"][-1]  # as the chapter has it
        row = f"| tiny_vae-seed0-likelihoods | done | {split} | {est['k']} | {images} |  | {est['nll']:.2f} |"
        assert row in report  # quick profile: no committed value beside it


def _pretend(spec, *parents):
    """A task function that runs nothing: a training task reports weights named after it, a likelihood task
    no estimate, a headlines task results made of its seed once it got all 24 tasks it reads, finished."""
    if spec.name == tasks.HEADLINES:
        assert len(parents) == 24 and all(p["status"] == "done" for p in parents)
        return {"status": "done", "headlines": {n: spec.seed + i / 100 for i, n in enumerate(headlines.HEADLINE_NAMES)}}
    if spec.splits:
        return {"status": "done", "likelihoods": {}}
    return {"status": "done", "weights_sha256": f"{spec.name}-{spec.seed}"}


@pytest.fixture
def pickled_by_value():
    """This module's task functions pickled by value for the workers (which cannot import the tests)."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_a_full_run_writes_the_headline_results_of_each_seed_to_seeds_json(tmp_path, pickled_by_value):
    _need_mnist()
    if data.verify(ChapterConfig.from_parameters(chapter="05").data_dir, "fashion_mnist"):
        pytest.skip("Fashion-MNIST not fetched")
    argv = ["--seeds", "0", "2", "--skip", "ae_thesis_10000", "--workers", "2", "--out", str(tmp_path)]
    assert reproduce.main(argv, task_fn=_pretend) == 0
    raw = json.loads((tmp_path / "seeds.json").read_text())
    assert raw["profile"] == "full" and raw["seeds"] == ["0", "2"]
    assert list(raw["results"]) == list(headlines.HEADLINE_NAMES)
    assert raw["results"]["ae_thesis_test_mse"] == {"0": 0.0, "2": 2.0}
    trained = [n for n in experiments.EXPERIMENTS if n != "ae_thesis_10000"]
    assert raw["weights_sha256"] == {n: {"0": f"{n}-0", "2": f"{n}-2"} for n in trained}
    assert load_seeds(tmp_path / "seeds.json")["ae_thesis_train_slope"] == {0: 0.02, 2: 2.02}  # what a chapter reads
    report = (tmp_path / "REPORT.md").read_text()
    assert "| headlines-seed0 | done | 46 |" in report and "| headlines-seed2 | done | 46 |" in report


def test_a_killed_worker_is_replaced_and_its_task_resumes_to_the_same_weights(tmp_path, test_experiments):
    _need_mnist()
    argv = ["--only", "tiny_killed", "tiny_ref", "--checkpoint-every", "1", "--workers", "2", "--out", str(tmp_path)]
    assert reproduce.main(argv, task_fn=_killed_once_after_epoch_2) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    killed, ref = summary["tasks"]["tiny_killed-seed0"], summary["tasks"]["tiny_ref-seed0"]
    assert killed["status"] == ref["status"] == "done"
    dead = int((tmp_path / "killed.pid").read_text())
    assert killed["pid"] != dead and killed["resumed_from_epoch"] == 2 and ref["resumed_from_epoch"] == 0
    assert killed["weights_sha256"] == ref["weights_sha256"]
    a, b = load_checkpoint(tmp_path / "seed0" / "tiny_killed.pt"), load_checkpoint(tmp_path / "seed0" / "tiny_ref.pt")
    assert a["epoch"] == b["epoch"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])  # bit-identical
    for metric in ("train_loss", "test_loss"):  # the same trajectory, epoch by epoch
        assert a["history"][metric] == b["history"][metric]


def test_overwrite_committed_moves_the_new_checkpoints_onto_the_committed_ones(tmp_path, monkeypatch,
                                                                                test_experiments):
    _need_mnist()
    if not (default_checkpoint_dir() / "linear_ae_2.pt").is_file():
        pytest.skip("no committed checkpoint")
    committed = tmp_path / "checkpoints"  # stands in for the repository's checkpoints/
    committed.mkdir()
    old = (default_checkpoint_dir() / "linear_ae_2.pt").read_bytes()  # a committed checkpoint of 100 epochs
    (committed / "tiny_ref.pt").write_bytes(old)
    monkeypatch.setattr(reproduce, "default_checkpoint_dir", lambda: committed)
    argv = ["--only", "tiny_ref", "--workers", "1", "--out", str(committed)]
    with pytest.raises(SystemExit):  # refused without the flag
        reproduce.main(argv, task_fn=_with_test_experiments)
    assert reproduce.main([*argv, "--overwrite-committed"], task_fn=_with_test_experiments) == 0
    summary = json.loads((committed / "summary.json").read_text())
    assert summary["tasks"]["tiny_ref-seed0"]["checkpoint"] == str(committed / "tiny_ref.pt")
    assert load_checkpoint(committed / "tiny_ref.pt")["epoch"] == 4 and not (committed / "seed0").exists()


def test_a_recipe_changed_since_the_committed_checkpoint_is_named():
    exp = experiments.get("vae_nll")
    committed = {"train_config": {**exp.full.to_dict(), "validation": 0, "seed": 7}}
    assert tasks.changed_fields(committed, exp) == ["validation"]  # the seed is not the recipe
    assert tasks.changed_fields({"train_config": exp.full.to_dict()}, exp) == []
    assert tasks.changed_fields({}, exp) == []
    older = {k: v for k, v in exp.full.to_dict().items() if k != "validation"}  # saved before the field existed
    assert tasks.changed_fields({"train_config": older}, exp) == ["validation"]

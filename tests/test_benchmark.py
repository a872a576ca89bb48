"""The training-speed benchmark's bookkeeping: the GEMMs it counts, the FLOPs, the table, its arguments.

The timings themselves are not tested (they are measurements, see ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "train_speed.py"
sys.path.insert(0, str(_PATH.parent))  # train_speed.py imports the modules beside it: loops, bound
import loops  # noqa: E402

_spec = importlib.util.spec_from_file_location("train_speed", _PATH)
bench = importlib.util.module_from_spec(_spec)
sys.modules["train_speed"] = bench  # its dataclasses look their module up there
_spec.loader.exec_module(bench)


def test_gemm_shapes_of_a_linear_stack_skip_the_datas_input_gradient():
    model = nn.Sequential(nn.Linear(10, 6), nn.ReLU(), nn.Linear(6, 3))
    assert bench.gemm_shapes(model, torch.randn(4, 10)) == [(4, 10, 6, False), (4, 6, 3, True)]


def test_gemm_shapes_of_convolutions_are_their_im2col_products():
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(8, 2, 2, stride=2))
    shapes = bench.gemm_shapes(model, torch.randn(5, 1, 7, 7))
    # conv: (B*H*W, C_in*k*k, C_out); transposed conv: the input gradient of a conv, (B*H*W, C_in, C_out*k*k)
    assert shapes == [(5 * 7 * 7, 1 * 9, 8, False), (5 * 7 * 7, 8, 2 * 4, True)]


def test_gemm_shapes_refuses_a_model_without_gemms():
    with pytest.raises(RuntimeError, match="no linear or convolution layer"):
        bench.gemm_shapes(nn.ReLU(), torch.randn(2, 3))


def test_matmul_bound_counts_two_or_three_gemms_per_layer():
    flops, seconds = bench.matmul_bound([(8, 5, 4, False), (8, 4, 3, True)], reps=1)
    assert flops == 2 * (2 * 8 * 5 * 4) + 3 * (2 * 8 * 4 * 3)
    assert seconds > 0


def test_table_divides_by_the_reference_at_the_same_thread_count():
    def row(variant, threads, sec, share=float("nan")):
        return {"model": "m", "variant": variant, "threads": threads, "sec": sec, "img_s": 60000 / sec,
                "gemm_share": share, "peak_mib": 100.0, "flops_epoch": 1e9, "bound_epoch": 0.5,
                "bound_gflops": 2.0, "gflops": 1.0 / sec}

    rows = [row("reference", 1, 4.0), row("reference", 2, 2.0), row("bare", 2, 1.0), row("thesis_lib", 2, 1.1, 0.5)]
    lines = bench.table(rows).splitlines()
    assert lines[4].startswith("| m | bare | 2 | 1.000 | 60,000 | 2.00x |")
    assert "| m | thesis_lib | 2 | 1.100 | 54,545 | 1.82x | +10.0% |" in lines[5]
    assert lines[5].endswith("| 45% | 50% |")  # bound 0.5 s of 1.1 s; half the step in GEMMs


@pytest.mark.parametrize("args, message", [(["--epochs", "0"], "--epochs must be a positive integer"),
                                           (["--load", "-1"], "--load must be a non-negative integer"),
                                           (["--threads", "0"], "--threads must be positive integers")])
def test_bad_arguments_are_refused_before_any_work(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(args + ["--data-dir", "/nonexistent", "--output", "-"])
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_the_handwritten_step_equals_autograd(activation):
    from thesis_lib.ground.config import ModelSpec
    from thesis_lib.runtime.models import build_model
    from thesis_lib.runtime.training import make_optimizer
    from thesis_lib.runtime.training import make_objective

    spec = ModelSpec("fc_autoencoder", {"widths": [20, 8, 4, 2], "activation": activation})
    torch.manual_seed(0)
    by_hand, by_autograd = build_model(spec), build_model(spec)
    by_autograd.load_state_dict(by_hand.state_dict())
    x = torch.rand(40, 20)
    batches = torch.randperm(40, generator=torch.Generator().manual_seed(1)).split(16)  # 16, 16 and 8
    loops.handwritten_steps(by_hand, make_optimizer("adam", by_hand.parameters(), lr=1e-2), x, batches)
    loops.bare_steps(by_autograd, make_objective("mse"), make_optimizer("adam", by_autograd.parameters(), lr=1e-2),
                     x, batches)
    for (name, a), b in zip(by_hand.named_parameters(), by_autograd.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-6), name
        assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-7), name
    torch.manual_seed(0)
    assert not torch.allclose(by_hand.encoder.layers[0].weight, build_model(spec).encoder.layers[0].weight)  # it moved


def test_the_handwritten_step_refuses_other_activations():
    from thesis_lib.ground.config import ModelSpec
    from thesis_lib.runtime.models import build_model
    from thesis_lib.runtime.training import make_optimizer

    model = build_model(ModelSpec("fc_autoencoder", {"widths": [6, 4, 2], "activation": "tanh"}))
    with pytest.raises(ValueError, match="relu, identity and sigmoid"):
        loops.handwritten_steps(model, make_optimizer("adam", model.parameters(), lr=1e-3), torch.rand(4, 6),
                                [torch.arange(4)])


def test_interleave_runs_the_loops_in_turn():
    calls = []

    def runner(name, value):
        def run():
            calls.append(name)
            return value + len(calls)
        return run

    times = loops.interleave({"a": runner("a", 0.0), "b": runner("b", 10.0)}, rounds=3)
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert times == {"a": [1.0, 3.0, 5.0], "b": [12.0, 14.0, 16.0]}

"""How close a loop comes to the machine: the floating-point operations of a model's GEMMs, the time
fp32 ``torch.mm`` needs for them, and the share of a training step that torch's profiler finds in them.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from loops import Case, bare_steps
from thesis_lib.runtime.training import epoch_permutation, make_objective, make_optimizer

GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::mkldnn_convolution", "aten::convolution_backward")


def gemm_share_of_step(case: Case, model: nn.Module, x: torch.Tensor, steps: int = 100) -> float:
    """Fraction of ``steps`` training steps of :func:`fit`'s kind spent in matrix-multiply and convolution
    kernels, by torch's profiler (self CPU time of the ops in :data:`GEMM_OPS` over the total).

    It tells how far the rest (activations, losses, Adam, autograd's bookkeeping) keeps the loop from the
    bound, and how much slower the GEMMs run inside a training step than in the bound's warm loop.
    """
    from torch.profiler import ProfilerActivity, profile

    objective = make_objective(case.loss)
    opt = make_optimizer("adam", model.parameters(), lr=case.lr)
    batches = epoch_permutation(len(x), 0, 1).split(case.batch_size)
    bare_steps(model, objective, opt, x, batches[:5])  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        bare_steps(model, objective, opt, x, batches[5 : 5 + steps])
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    gemm = sum(e.self_cpu_time_total for e in events if e.key in GEMM_OPS)
    return gemm / total


def gemm_shapes(model: nn.Module, example: torch.Tensor) -> list[tuple[int, int, int, bool]]:
    """(m, k, n, input_needs_grad) of every forward GEMM of one batch: linear layers and convolutions
    (as im2col GEMMs). ``input_needs_grad`` is false for a layer applied to the data itself, whose
    input gradient no training loop computes."""
    shapes: list[tuple[int, int, int, bool]] = []

    def hook(module, inputs, output):
        inp = inputs[0]
        needs = bool(inp.requires_grad)
        if isinstance(module, nn.Conv2d):
            b, cout, ho, wo = output.shape
            cin, k = module.in_channels, module.kernel_size[0] * module.kernel_size[1]
            shapes.append((b * ho * wo, cin * k, cout, needs))
        elif isinstance(module, nn.ConvTranspose2d):
            b, cin, hi, wi = inp.shape  # its forward is a convolution's input gradient
            k = module.kernel_size[0] * module.kernel_size[1]
            shapes.append((b * hi * wi, cin, module.out_channels * k, needs))
        else:  # nn.Linear, thesis_lib's PhiLayer: a weight (out, in) of its own applied to (B, in)
            shapes.append((inp.shape[0], module.weight.shape[1], module.weight.shape[0], needs))

    def has_gemm(m: nn.Module) -> bool:
        w = m._parameters.get("weight")
        return isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) or (w is not None and w.dim() == 2)

    handles = [m.register_forward_hook(hook) for m in model.modules() if has_gemm(m)]
    model(example)  # with autograd on, so that requires_grad tells which inputs get a gradient
    for h in handles:
        h.remove()
    if not shapes:
        raise RuntimeError(f"found no linear or convolution layer in {type(model).__name__}")
    return shapes


def matmul_bound(shapes: list[tuple[int, int, int, bool]], reps: int = 20) -> tuple[float, float]:
    """(FLOPs, seconds) of one batch's forward and backward GEMMs, timed with fp32 torch.mm.

    Each forward GEMM (m,k)@(k,n) has a backward GEMM of the same size for the weight gradient, and
    another for the input gradient unless the input is the data (the first layer), which needs none.
    """
    flops, seconds = 0.0, 0.0
    for m, k, n, needs_input_grad in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        g = torch.randn(m, n)
        ops = [(a, b), (a.t(), g)] + ([(g, b.t())] if needs_input_grad else [])
        for x, y in ops:
            torch.mm(x, y)  # warm-up
        best = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(reps):
                for x, y in ops:
                    torch.mm(x, y)
            best = min(best, (time.perf_counter() - t0) / reps)
        flops += len(ops) * 2.0 * m * k * n
        seconds += best
    return flops, seconds

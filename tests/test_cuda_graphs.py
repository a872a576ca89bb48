"""The GPU path (thesis_lib.runtime.cuda_graphs): what runs on a CPU is checked here; the captured training itself
only where a CUDA device exists (skipped otherwise, so that CI needs no GPU)."""

from __future__ import annotations

import copy

import pytest
import torch

from thesis_lib.mathematics import optimizers
from thesis_lib.runtime import cuda_graphs, training
from thesis_lib.ground.config import ModelSpec, TrainConfig
from thesis_lib.mathematics.losses import reconstruction_objective
from thesis_lib.runtime.models import build_model

CUDA = torch.cuda.is_available()


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelSpec("fc_autoencoder", {"widths": [20, 8, 3]}))


def test_batch_sizes_are_the_full_batch_and_the_remainder():
    assert cuda_graphs.batch_sizes(1000, 512) == [512, 488]
    assert cuda_graphs.batch_sizes(1024, 512) == [512]
    assert cuda_graphs.batch_sizes(100, 512) == [100]


def _steps(model, optimizer, n):
    x = torch.rand(64, 20, generator=torch.Generator().manual_seed(n))
    objective = reconstruction_objective("mse")
    for _ in range(n):
        optimizer.zero_grad()
        objective(model, x).mean().backward()
        optimizer.step()


@pytest.mark.parametrize("warm", [0, 2], ids=["fresh optimiser", "optimiser with state"])
def test_restore_puts_back_every_value_in_place(warm):
    """The warm-up before capture takes real steps; restore must undo them without moving a tensor."""
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    _steps(model, opt, warm)
    reference_model = copy.deepcopy(model)
    reference_opt = torch.optim.Adam(reference_model.parameters(), lr=1e-2)
    reference_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # its own tensors, not opt's
    saved = cuda_graphs.snapshot(model, opt)
    _steps(model, opt, 3)  # the warm-up
    addresses = [p.data_ptr() for p in model.parameters()] + \
        [v.data_ptr() for st in opt.state.values() for v in st.values()]
    cuda_graphs.restore(model, opt, saved)
    assert addresses == [p.data_ptr() for p in model.parameters()] + \
        [v.data_ptr() for st in opt.state.values() for v in st.values()]  # nothing moved
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference_model.state_dict().values()))
    # from here both take the same steps to the same weights: the restored state is the saved one
    _steps(model, opt, 2)
    _steps(reference_model, reference_opt, 2)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference_model.parameters()))


def test_make_capturable_turns_the_rate_into_a_tensor_and_refuses_the_thesis_optimisers():
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    assert cuda_graphs.capturable(opt)
    cuda_graphs.make_capturable(opt, torch.device("cpu"))
    group = opt.param_groups[0]
    assert group["capturable"] and isinstance(group["lr"], torch.Tensor) and group["lr"].item() == pytest.approx(3e-4)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    lr = group["lr"]
    opt.step()  # no gradients: changes nothing, but a scheduler expects a step before its own
    scheduler.step()
    assert group["lr"] is lr and lr.item() == pytest.approx(1.5e-4)  # filled in place: a replay sees it
    for thesis_opt in (optimizers.Adam(model.parameters(), lr=1e-3), optimizers.SGD(model.parameters(), lr=1e-3)):
        assert not cuda_graphs.capturable(thesis_opt)


def test_fit_refuses_cuda_graphs_it_cannot_use_before_any_work():
    model = _model()
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(32, 20)
    with pytest.raises(ValueError, match=r"cuda_graphs=True needs the data on a CUDA device \(got cpu\)"):
        training.fit(model, reconstruction_objective("mse"), opt, TrainConfig(epochs=1, batch_size=8), x,
                     loop=training.Loop(progress=False, cuda_graphs=True))
    with pytest.raises(ValueError, match="cuda_graphs must be True, False or None"):
        training.fit(model, reconstruction_objective("mse"), opt, TrainConfig(epochs=1, batch_size=8), x,
                     loop=training.Loop(progress=False, cuda_graphs="yes"))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing trained


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["fc_autoencoder", "vae"])
def test_captured_steps_train_like_the_eager_loop_on_a_gpu(kind):
    """On a GPU: the same batches, the same updates. The autoencoder (no random numbers in its step)
    ends at the eager loop's weights to float tolerance; the VAE draws its noise differently, so only
    its loss is compared, loosely."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    spec = ModelSpec("fc_autoencoder", {"widths": [784, 128, 64, 12, 3]}) if kind == "fc_autoencoder" else \
        ModelSpec("vae", {"input_dim": 784, "hidden": [400], "latent_dim": 20})
    objective = training.make_objective("mse" if kind == "fc_autoencoder" else "elbo")
    x = torch.rand(1000, 784, generator=torch.Generator().manual_seed(0)).cuda()
    runs = {}
    for graphs in (False, True):
        torch.manual_seed(0)
        model = build_model(spec).cuda()
        opt = training.make_optimizer("adam", model.parameters(), 1e-3)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
        hist = training.fit(model, objective, opt, TrainConfig(epochs=3, batch_size=128), x,
                            loop=training.Loop(progress=False, scheduler=sched, cuda_graphs=graphs))
        runs[graphs] = (model, hist)
    (eager, h0), (graphed, h1) = runs[False], runs[True]
    if kind == "fc_autoencoder":
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(eager.parameters(), graphed.parameters()))
        assert h1["train_loss"] == pytest.approx(h0["train_loss"], rel=1e-4)
    else:
        assert h1["train_loss"] == pytest.approx(h0["train_loss"], rel=0.05)

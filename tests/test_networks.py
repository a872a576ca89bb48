from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from thesis_lib.mathematics.activations import get_activation, sigmoid
from thesis_lib.mathematics.networks import (
    DeepNetwork,
    PhiLayer,
    PhiNeuron,
    compose,
    count_parameters,
    eval_mode,
    phi_layers,
    resolve_activation,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------- PhiNeuron, Definition 1.1.3


def test_neuron_closed_form():
    w = torch.tensor([1.0, -2.0, 0.5])
    n = PhiNeuron(w, 0.25, "relu")
    x = torch.tensor([[1.0, 1.0, 2.0], [3.0, 0.0, 0.0]])
    # <w, x> + b = 1 - 2 + 1 + 0.25 = 0.25 and 3 + 0.25
    torch.testing.assert_close(n(x), torch.tensor([0.25, 3.25]))
    torch.testing.assert_close(n(x[1]), torch.tensor(3.25))
    assert PhiNeuron(w, torch.tensor([-10.0]), "relu")(x).eq(0).all()


def test_neuron_parameters_and_function_activation():
    w = torch.randn(4)
    n = PhiNeuron(w, 0.0, sigmoid)
    assert [p.shape for p in n.parameters()] == [torch.Size([4]), torch.Size([])]
    w.add_(1.0)  # the neuron holds a copy
    assert not torch.equal(n.weight, w)
    x = torch.randn(5, 4)
    torch.testing.assert_close(n(x), torch.sigmoid(x @ n.weight))


def test_neuron_bad_input():
    with pytest.raises(ValueError, match=r"weight must be a 1-D tensor of shape \(k,\)"):
        PhiNeuron(torch.zeros(2, 2), 0.0)
    with pytest.raises(ValueError, match="weight must be a 1-D tensor"):
        PhiNeuron([1.0, 2.0], 0.0)
    with pytest.raises(ValueError, match="activation='bogus' is not a known activation"):
        PhiNeuron(torch.zeros(2), 0.0, "bogus")


# ---------------------------------------------------------------- PhiLayer, Definition 1.1.4


@pytest.mark.parametrize("act, ref", [("relu", torch.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh),
                                      ("identity", lambda x: x), ("elu", F.elu)])
def test_layer_equals_linear_plus_activation(act, ref):
    layer = PhiLayer(6, 4, act)
    assert layer.weight.shape == (4, 6) and layer.bias.shape == (4,)
    lin = nn.Linear(6, 4)
    with torch.no_grad():
        lin.weight.copy_(layer.weight)
        lin.bias.copy_(layer.bias)
    x = torch.randn(7, 6)
    y = layer(x)
    assert y.shape == (7, 4)
    torch.testing.assert_close(y, ref(lin(x)))


def test_layer_initialised_like_linear():
    torch.manual_seed(3)
    layer = PhiLayer(10, 5)
    torch.manual_seed(3)
    lin = nn.Linear(10, 5)
    assert torch.equal(layer.weight, lin.weight) and torch.equal(layer.bias, lin.bias)


def test_layer_accepts_module_and_function():
    x = torch.randn(3, 2)
    a = PhiLayer(2, 3, nn.LeakyReLU(0.5))
    torch.testing.assert_close(a(x), F.leaky_relu(F.linear(x, a.weight, a.bias), 0.5))
    b = PhiLayer(2, 3, sigmoid)
    assert b.activation_name == "sigmoid"
    torch.testing.assert_close(b(x), torch.sigmoid(F.linear(x, b.weight, b.bias)))


def test_neuron_i_equals_ith_output():
    layer = PhiLayer(5, 4, "sigmoid")
    x = torch.randn(8, 5)
    y = layer(x)
    for i in range(4):
        h = layer.neuron(i)
        assert isinstance(h, PhiNeuron)
        # w_i = W^T e_i is the i-th row of W
        e = torch.zeros(4)
        e[i] = 1.0
        torch.testing.assert_close(h.weight, layer.weight.detach().T @ e)
        torch.testing.assert_close(h.bias, torch.dot(layer.bias.detach(), e))
        torch.testing.assert_close(h(x), y[:, i])


def test_layer_bad_input():
    with pytest.raises(ValueError, match="in_features must be a positive integer"):
        PhiLayer(0, 3)
    with pytest.raises(ValueError, match="out_features must be a positive integer"):
        PhiLayer(3, 2.0)
    with pytest.raises(ValueError, match="activation='nope' is not a known activation"):
        PhiLayer(3, 2, "nope")
    with pytest.raises(ValueError, match="activation must be an activation name"):
        PhiLayer(3, 2, 5)


# ---------------------------------------------------------------- DeepNetwork, Definition 1.1.5


def test_deep_network_equals_sequential():
    net = DeepNetwork([6, 5, 4, 3], ["relu", "tanh", "sigmoid"])
    assert net.depth == 3 and net.widths == (6, 5, 4, 3)
    assert net.in_features == 6 and net.out_features == 3
    assert net.activations == ("relu", "tanh", "sigmoid")
    seq = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3), nn.Sigmoid())
    with torch.no_grad():
        for layer, lin in zip(net.layers, [seq[0], seq[2], seq[4]]):
            lin.weight.copy_(layer.weight)
            lin.bias.copy_(layer.bias)
    x = torch.randn(9, 6)
    torch.testing.assert_close(net(x), seq(x))


def test_deep_network_single_activation_and_module():
    net = DeepNetwork((3, 3, 3), "leaky_relu")
    assert net.activations == ("leaky_relu", "leaky_relu")
    assert net.layers[0].activation is not net.layers[1].activation
    m = nn.PReLU()
    net2 = DeepNetwork((3, 3, 3), m)
    assert net2.layers[0].activation is not m and net2.layers[0].activation is not net2.layers[1].activation


def test_parameter_vector():
    net = DeepNetwork([4, 3, 2], "relu")
    v = net.parameter_vector()
    assert v.shape == (4 * 3 + 3 + 3 * 2 + 2,)
    torch.testing.assert_close(v, nn.utils.parameters_to_vector(net.parameters()))
    torch.testing.assert_close(v[:12], net.layers[0].weight.detach().reshape(-1))
    torch.testing.assert_close(v[12:15], net.layers[0].bias.detach())
    v.sum().backward()  # gradients flow through it
    assert torch.equal(net.layers[1].weight.grad, torch.ones(2, 3))


def test_deep_network_bad_input():
    with pytest.raises(ValueError, match="widths must have at least 2 entries"):
        DeepNetwork([3])
    with pytest.raises(ValueError, match="widths must contain positive integers"):
        DeepNetwork([3, 0, 2])
    with pytest.raises(ValueError, match="widths must be a sequence"):
        DeepNetwork("32")
    with pytest.raises(ValueError, match=r"activations must be one activation or a sequence of L = 2"):
        DeepNetwork([3, 2, 1], ["relu"])
    with pytest.raises(ValueError, match=r"activations\[1\]='bad' is not a known activation"):
        DeepNetwork([3, 2, 1], ["relu", "bad"])
    with pytest.raises(ValueError, match="activations='bad' is not a known activation"):
        DeepNetwork([3, 2, 1], "bad")


@pytest.mark.parametrize("make", [lambda: PhiNeuron(torch.zeros(3), 0.0), lambda: PhiLayer(3, 2),
                                  lambda: DeepNetwork([3, 2, 1])], ids=["neuron", "layer", "network"])
def test_forward_leaves_a_wrong_input_size_to_torch(make):
    with pytest.raises(RuntimeError):  # torch's product refuses 2 features where 3 are expected
        make()(torch.zeros(4, 2))


# ---------------------------------------------------------------- compose, Lemma 2.1.3 / Theorem 2.1.4


def test_compose_two_shares_parameters():
    a = DeepNetwork([5, 4, 3], "relu")
    b = DeepNetwork([3, 6], "sigmoid")
    f = compose(a, b)
    assert f.depth == a.depth + b.depth
    assert f.widths == (5, 4, 3, 6)
    expected = list(a.parameters()) + list(b.parameters())
    got = list(f.parameters())
    assert len(got) == len(expected) and all(p is q for p, q in zip(got, expected))
    x = torch.randn(4, 5)
    torch.testing.assert_close(f(x), b(a(x)))
    torch.testing.assert_close(f.parameter_vector(), torch.cat([a.parameter_vector(), b.parameter_vector()]))
    with torch.no_grad():  # the layers are the same modules: changing a changes f
        a.layers[0].bias.add_(1.0)
    torch.testing.assert_close(f(x), b(a(x)))


def test_compose_three_theorem_2_1_4():
    nets = [DeepNetwork([6, 5], "relu"), DeepNetwork([5, 4, 4], "tanh"), DeepNetwork([4, 3, 2, 2], "identity")]
    f = compose(*nets)
    assert f.depth == sum(n.depth for n in nets) == 6  # L_1 + L_2 + L_3, including L_N
    assert f.activations == ("relu", "tanh", "tanh", "identity", "identity", "identity")
    assert all(p is q for p, q in zip(f.parameters(), [p for n in nets for p in n.parameters()]))
    assert count_parameters(f) == sum(count_parameters(n) for n in nets)
    x = torch.randn(3, 6)
    torch.testing.assert_close(f(x), nets[2](nets[1](nets[0](x))))
    # associativity: (f3 o f2) o f1 == f3 o (f2 o f1)
    torch.testing.assert_close(compose(compose(nets[0], nets[1]), nets[2])(x), compose(nets[0], compose(*nets[1:]))(x))


def test_compose_same_network_twice_ties_parameters():
    a = DeepNetwork([3, 3], "tanh")
    f = compose(a, a)
    assert f.depth == 2 and len(list(f.parameters())) == 2
    assert f.parameter_vector().numel() == 2 * a.parameter_vector().numel()
    x = torch.randn(2, 3)
    torch.testing.assert_close(f(x), a(a(x)))


def test_compose_bad_input():
    a = DeepNetwork([5, 4], "relu")
    b = DeepNetwork([3, 2], "relu")
    with pytest.raises(ValueError,
                       match=r"networks\[0\] has output dimension 4 but networks\[1\] has input dimension 3"):
        compose(a, b)
    with pytest.raises(ValueError, match=r"networks\[1\] has output dimension 2 but networks\[2\]"):
        compose(DeepNetwork([6, 3]), b, a)


def test_from_layers_bad_input():
    with pytest.raises(ValueError, match=r"layers\[0\] has output dimension 2 but layers\[1\] has input dimension 3"):
        DeepNetwork.from_layers([PhiLayer(4, 2), PhiLayer(3, 1)])


def test_count_parameters():
    net = DeepNetwork([7, 5, 2], "relu")
    assert count_parameters(net) == 7 * 5 + 5 + 5 * 2 + 2
    net.layers[0].weight.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == 5 + 5 * 2 + 2
    assert count_parameters(PhiLayer(3, 2, get_activation("PReLU"))) == 3 * 2 + 2 + 1


# ---------------------------------------------------------------- the shared builder and helpers


def test_phi_layers_is_what_deep_network_builds():
    layers = phi_layers([4, 3, 2], ["tanh", "identity"])
    assert [(layer.in_features, layer.out_features) for layer in layers] == [(4, 3), (3, 2)]
    assert [layer.activation_name for layer in layers] == ["tanh", "identity"]
    torch.manual_seed(1)
    net = DeepNetwork([4, 3, 2], ["tanh", "identity"])
    torch.manual_seed(1)
    again = phi_layers([4, 3, 2], ["tanh", "identity"])
    for a, b in zip(net.layers, again):  # the same initial weights from the same seed
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    torch.manual_seed(1)
    linears = [nn.Linear(4, 3), nn.Linear(3, 2)]  # ... which are torch.nn.Linear's
    assert all(torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias) for a, b in zip(again, linears))
    shared = nn.ReLU()
    copies = phi_layers([2, 2, 2], shared)
    assert copies[0].activation is not copies[1].activation  # a single module is copied per layer
    with pytest.raises(ValueError, match=r"activations must be one activation or a sequence of L = 1"):
        phi_layers([2, 2], ["relu", "relu"])


def test_resolve_activation_names_the_parameter():
    phi, name = resolve_activation("phi", "relu")
    assert isinstance(phi, nn.ReLU) and name == "relu"
    assert resolve_activation("phi", torch.tanh) == (torch.tanh, "tanh")
    with pytest.raises(ValueError, match="phi='nope' is not a known activation"):
        resolve_activation("phi", "nope")
    with pytest.raises(ValueError, match="phi must be an activation name, an nn.Module or a function"):
        resolve_activation("phi", 3)


def test_eval_mode_restores_the_mode_even_after_an_error():
    net = DeepNetwork([2, 2])
    net.train()
    with eval_mode(net):
        assert not net.training
    assert net.training
    net.eval()
    with pytest.raises(RuntimeError), eval_mode(net):
        net.train()
        raise RuntimeError("inside")
    assert not net.training

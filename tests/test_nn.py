"""convforge.nn: each layer's forward and backward against torch (float64 torch as the oracle,
tolerances from tests/helpers.py), whole-model gradients against finite differences, and the
Module API (state dict keys, repr, modes) against torch.nn."""

import math

import numpy as np
import pytest
import torch

import convforge.nn as nn
from convforge import models
from helpers import assert_close, random

torch.set_num_threads(1)


def torch_layer(layer):
    """The torch.nn twin of a convforge layer, in float64, with the same parameters."""
    if hasattr(layer, "torch_twin"):
        twin = layer.torch_twin()
    else:  # the reprs match torch's, so they rebuild the same layer there
        twin = eval("torch.nn." + repr(layer).replace("padding=same", "padding='same'"))
    twin = twin.double().train(layer.training)
    with torch.no_grad():
        for name, p in twin.named_parameters():
            p.copy_(torch.from_numpy(layer.state_dict()[name].astype(np.float64)))
    return twin


def torch_run(twin, x, g):
    """Forward and backward through torch: (output, grad_input, {name: grad})."""
    xt = torch.from_numpy(np.asarray(x, np.float64)).requires_grad_(True)
    out = twin(xt)
    out.backward(torch.from_numpy(np.asarray(g, np.float64)))
    grads = {name: p.grad.numpy() for name, p in twin.named_parameters()}
    return out.detach().numpy(), xt.grad.numpy(), grads


def check_layer(layer, x, depth, linear_in_input=True, dtype=np.float32):
    """Compare forward, grad_input and parameter grads with torch. The error bound is derived
    from the same computation on absolute values (the sum of |terms| per output)."""
    layer.to(dtype)
    x = x.astype(dtype)
    twin = torch_layer(layer)
    out = layer(x)
    g = random(out.shape, dtype, "grad", repr(layer))
    grad_input = layer.backward(g)
    expected_out, expected_gx, expected_grads = torch_run(twin, x, g)

    # magnitudes: parameters, grad_output (and the input, when the layer is linear in it) as |.|
    abs_twin = torch_layer(layer)
    with torch.no_grad():
        for p in abs_twin.parameters():
            p.abs_()
    mag_x = np.abs(x) if linear_in_input else x
    mag_out, mag_gx, mag_grads = torch_run(abs_twin, mag_x, np.abs(g))
    if not linear_in_input:  # e.g. max pooling: the output is one of the inputs
        mag_out = np.abs(expected_out)
    assert out.dtype == dtype and grad_input.dtype == dtype
    assert_close(out, expected_out, np.abs(mag_out), depth, what="forward")
    assert_close(grad_input, expected_gx, np.abs(mag_gx), depth, what="grad_input")
    for name, p in layer.named_parameters():
        assert_close(p.grad, expected_grads[name], np.abs(mag_grads[name]), depth, what=f"grad {name}")
    return layer


CONVS = [
    nn.Conv2d(3, 8, 3),
    nn.Conv2d(3, 5, 3, stride=2, padding=1),
    nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), bias=False),
    nn.Conv2d(6, 4, 3, padding="same", groups=2),
    nn.Conv2d(1, 7, 5),
    nn.Conv2d(5, 3, 1),
]


@pytest.mark.parametrize("conv", CONVS, ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d(conv, dtype):
    x = random((3, conv.in_channels, 11, 9), dtype, "conv", repr(conv))
    depth = max(conv.in_channels * math.prod(conv.kernel_size), 3 * 11 * 9)
    check_layer(conv, x, depth, dtype=dtype)


def test_conv2d_first_layer_skips_input_grad():
    conv = nn.Conv2d(1, 4, 3)
    x = random((2, 1, 6, 6), np.float32, "first")
    conv(x)
    assert conv.backward(np.ones((2, 4, 4, 4), np.float32), need_input_grad=False) is None
    assert conv.weight.grad.shape == (4, 1, 3, 3) and conv.bias.grad.shape == (4,)


@pytest.mark.parametrize("pool", [
    nn.MaxPool2d(2), nn.MaxPool2d(3, stride=2, padding=1), nn.MaxPool2d(3, 2, ceil_mode=True),
    nn.MaxPool2d(2, stride=1, dilation=2),
], ids=repr)
def test_max_pool2d(pool):
    x = random((2, 3, 9, 7), np.float32, "maxpool", repr(pool))
    check_layer(pool, x, depth=9, linear_in_input=False)


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), dict(kernel_size=2, divisor_override=3),
], ids=str)
def test_avg_pool2d(kwargs):
    pool = nn.AvgPool2d(**kwargs)
    pool.torch_twin = lambda: torch.nn.AvgPool2d(**kwargs)
    x = random((2, 3, 9, 7), np.float32, "avgpool", str(kwargs))
    check_layer(pool, x, depth=9)


@pytest.mark.parametrize("shape", [(5, 13), (2, 3, 13), (1, 13)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(shape, bias):
    check_layer(nn.Linear(13, 7, bias=bias), random(shape, np.float32, "linear"), depth=max(13, 7, shape[0]))


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.Flatten(), nn.Flatten(0, 2), nn.Dropout(0.3).eval()], ids=repr)
def test_elementwise_and_shape_layers(layer):
    x = random((3, 4, 5, 2), np.float32, "elementwise")
    x[0, 0, 0, 0] = 0.0  # ReLU's gradient at 0 is 0, as torch's
    check_layer(layer, x, depth=1, linear_in_input=False)


def test_relu_inplace():
    x = random((4, 6), np.float32, "relu")
    relu = nn.ReLU(inplace=True)
    out = relu(x)
    assert out is x and (x >= 0).all()


def test_dropout_training():
    nn.manual_seed(3)
    drop = nn.Dropout(0.25)
    x = np.ones((200, 50), np.float32)
    out = drop(x)
    kept = out != 0
    assert np.allclose(out[kept], 1 / 0.75)
    assert abs(kept.mean() - 0.75) < 0.02
    g = random(x.shape, np.float32, "dropout")
    assert np.array_equal(drop.backward(g), g * out)
    assert np.array_equal(nn.Dropout(1.0)(x), np.zeros_like(x))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy(reduction, weighted):
    logits = random((7, 5), np.float64, "ce") * 30  # large logits: the log-softmax must be stable
    logits[0, 2] = 800.0
    target = np.array([2, 0, 4, 1, 1, -100, 3])
    weight = np.array([1.0, 2.0, 0.5, 1.5, 3.0]) if weighted else None
    criterion = nn.CrossEntropyLoss(weight=weight, reduction=reduction)
    loss = criterion(logits, target)
    g = np.linspace(0.5, 2.0, 7) if reduction == "none" else 1.0
    grad = criterion.backward(g)

    lt = torch.from_numpy(logits).requires_grad_(True)
    expected = torch.nn.CrossEntropyLoss(
        weight=None if weight is None else torch.from_numpy(weight), reduction=reduction)(lt, torch.from_numpy(target))
    expected.backward(torch.as_tensor(g, dtype=torch.float64) if reduction == "none" else None)
    assert np.isfinite(loss).all()
    assert np.allclose(loss, expected.detach().numpy(), rtol=1e-12, atol=0)
    assert np.allclose(grad, lt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_cross_entropy_float32_and_bad_targets():
    logits = random((4, 3), np.float32, "ce32")
    criterion = nn.CrossEntropyLoss()
    loss = criterion(logits, np.array([0, 1, 2, 1]))
    assert loss.dtype == np.float32 and criterion.backward().dtype == np.float32
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits).double(), torch.tensor([0, 1, 2, 1]))
    assert abs(loss.item() - expected.item()) < 1e-6
    with pytest.raises(ValueError, match="target: class indices must be in"):
        criterion(logits, np.array([0, 1, 3, 1]))
    with pytest.raises(ValueError, match="target: expected shape"):
        criterion(logits, np.array([0, 1]))
    with pytest.raises(TypeError, match="target: expected integer"):
        criterion(logits, np.zeros(4))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse(reduction):
    a, b = random((3, 4), np.float64, "mse-a"), random((3, 4), np.float64, "mse-b")
    criterion = nn.MSELoss(reduction=reduction)
    loss = criterion(a, b)
    g = random((3, 4), np.float64, "mse-g") if reduction == "none" else 1.0
    grad = criterion.backward(g)
    at = torch.from_numpy(a).requires_grad_(True)
    expected = torch.nn.MSELoss(reduction=reduction)(at, torch.from_numpy(b))
    expected.backward(torch.as_tensor(g) if reduction == "none" else None)
    assert np.allclose(loss, expected.detach().numpy(), rtol=1e-13)
    assert np.allclose(grad, at.grad.numpy(), rtol=1e-13)


# ------------------------------------------------------------------------------------------------
# Whole models


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, stride=2, padding=1), nn.ReLU(), nn.AvgPool2d(2, ceil_mode=True),
        nn.Flatten(), nn.Linear(5 * 2 * 2, 6), nn.ReLU(), nn.Dropout(0.0), nn.Linear(6, 3),
    )


def torch_small_cnn(model=None):
    """small_cnn() in torch, with ``model``'s parameters when given."""
    tnn = torch.nn
    twin = tnn.Sequential(
        tnn.Conv2d(2, 4, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(4, 5, 3, stride=2, padding=1), tnn.ReLU(), tnn.AvgPool2d(2, ceil_mode=True),
        tnn.Flatten(), tnn.Linear(5 * 2 * 2, 6), tnn.ReLU(), tnn.Dropout(0.0), tnn.Linear(6, 3),
    )
    if model is not None:
        twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
        twin.to(torch.float64 if model[0].weight.dtype == np.float64 else torch.float32)
    return twin


def test_whole_model_gradients_match_finite_differences():
    """Central differences in float64: error ~ h^2 (truncation) + eps * |L| / h (rounding),
    about 1e-10 here, far below the 1e-7 relative bound; an indexing or scaling bug is O(1).
    A coordinate whose +-h step flips a ReLU or moves a max (a kink, where the loss has no
    derivative) is skipped: the activation pattern must be the same at both ends."""
    nn.manual_seed(0)
    model = small_cnn().double()
    x = np.random.default_rng(11).uniform(-1, 1, (3, 2, 12, 10))
    target = np.array([0, 2, 1])
    criterion = nn.CrossEntropyLoss()

    def loss_and_pattern():
        loss = float(criterion(model(x), target))
        pattern = [m._mask.copy() for m in model if isinstance(m, nn.ReLU)]
        pattern += [m._saved[1].copy() for m in model if isinstance(m, nn.MaxPool2d)]
        return loss, pattern

    def same(a, b):
        return all(np.array_equal(u, v) for u, v in zip(a, b))

    _, base = loss_and_pattern()
    model.zero_grad()
    grad_x = model.backward(criterion.backward())
    h = 1e-5
    rng = np.random.default_rng(0)
    checked = attempted = 0
    checks = [(name, p.data, p.grad) for name, p in model.named_parameters()] + [("input", x, grad_x)]
    for name, array, grad in checks:
        flat, gflat = array.reshape(-1), grad.reshape(-1)
        for i in rng.choice(flat.size, size=min(flat.size, 12), replace=False):
            attempted += 1
            saved = flat[i]
            flat[i] = saved + h
            up, up_pattern = loss_and_pattern()
            flat[i] = saved - h
            down, down_pattern = loss_and_pattern()
            flat[i] = saved
            if not (same(up_pattern, base) and same(down_pattern, base)):
                continue
            numeric = (up - down) / (2 * h)
            assert abs(numeric - gflat[i]) <= 1e-7 * max(1.0, abs(numeric)), (name, i, numeric, gflat[i])
            checked += 1
    assert checked >= 0.75 * attempted, (checked, attempted)


def test_model_matches_torch_with_copied_weights():
    nn.manual_seed(1)
    model = small_cnn()
    twin = torch_small_cnn(model)
    x = random((4, 2, 12, 10), np.float32, "model-x")
    target = np.array([0, 2, 1, 1])
    criterion = nn.CrossEntropyLoss()
    loss = criterion(model(x), target)
    model.backward(criterion.backward())
    expected = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(target))
    expected.backward()
    assert abs(loss.item() - expected.item()) < 1e-5
    for name, p in twin.named_parameters():
        got = dict(model.named_parameters())[name].grad
        assert np.allclose(got, p.grad.numpy(), rtol=1e-4, atol=1e-6), name


def test_state_dict_keys_repr_and_init_follow_torch():
    nn.manual_seed(0)
    model = models.lenet5()
    torch.manual_seed(0)
    twin = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(), torch.nn.Linear(84, 10))
    assert repr(model) == repr(twin)
    ours, theirs = model.state_dict(), twin.state_dict()
    assert list(ours) == list(theirs)
    for key in theirs:
        assert ours[key].shape == tuple(theirs[key].shape) and ours[key].dtype == np.float32
        # the same distribution: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases
        bound = float(theirs[key].abs().max())
        fan_in = math.prod(ours[key.replace("bias", "weight")].shape[1:])
        assert np.abs(ours[key]).max() <= 1 / math.sqrt(fan_in) + 1e-7
        if ours[key].size > 100:
            assert np.abs(ours[key]).max() > 0.9 * bound
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in twin.parameters())
    model.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    x = random((2, 1, 32, 32), np.float32, "lenet")
    assert np.allclose(model(x), twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_module_api():
    model = small_cnn()
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias", "10.weight", "10.bias"]
    x = random((2, 2, 12, 10), np.float32, "api")
    assert model.output_shape(x.shape) == model(x).shape == (2, 3)
    model.backward(np.ones((2, 3), np.float32))
    first = model[0].weight.grad.copy()
    model(x)
    model.backward(np.ones((2, 3), np.float32))
    assert np.allclose(model[0].weight.grad, 2 * first, rtol=1e-5)  # gradients accumulate
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="0.weight: expected shape"):
        model.load_state_dict({**model.state_dict(), "0.weight": np.zeros((1, 1, 1, 1), np.float32)})
    with pytest.raises(ValueError, match="missing keys"):
        model.load_state_dict({"0.weight": model.state_dict()["0.weight"]})
    result = model.load_state_dict({"0.weight": model.state_dict()["0.weight"]}, strict=False)
    assert "0.bias" in result.missing_keys
    assert len(model) == 11 and isinstance(model[1], nn.ReLU) and len(model[:3]) == 3
    with pytest.raises(ValueError, match="in_channels"):
        nn.Conv2d(0, 3, 3)
    with pytest.raises(ValueError, match="expected 2 channels"):
        model.output_shape((1, 3, 8, 8))


def test_attribute_registration():
    conv = nn.Conv2d(2, 3, 1, bias=False)
    assert conv.bias is None and list(conv.state_dict()) == ["weight"]
    with pytest.raises(TypeError, match="cannot assign ndarray as parameter 'weight'"):
        conv.weight = np.zeros((3, 2, 1, 1), np.float32)
    conv.weight = nn.Parameter(np.ones((3, 2, 1, 1), np.float32))
    assert np.array_equal(conv.state_dict()["weight"], np.ones((3, 2, 1, 1)))
    model = nn.Sequential(conv, nn.ReLU())
    model.extra = nn.Linear(2, 2)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "extra.weight", "extra.bias"]
    model.extra = None
    assert [n for n, _ in model.named_parameters()] == ["0.weight"] and model.extra is None

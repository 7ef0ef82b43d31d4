"""convforge.nn's BatchNorm2d, adaptive pooling, activations, Identity and the Residual and
Concat containers against torch.nn (forward, and backward through torch.autograd), in float64
and float32, with float64 torch as the oracle; adaptive pooling also against a float64 NumPy
loop over torch's windows. Tolerances come from tests/helpers.py: the allowed error is derived
from the magnitude of the terms each result sums and how many there are."""

import math
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch

import convforge.nn as nn
from helpers import assert_close, random

torch.set_num_threads(1)
DTYPES = [np.float32, np.float64]


def torch_run(twin, x, g):
    """float64 forward and backward through torch: (output, grad_input, {name: grad})."""
    twin = twin.double()
    xt = torch.from_numpy(np.array(x, np.float64)).requires_grad_(True)
    out = twin(xt)
    out.backward(torch.from_numpy(np.asarray(g, np.float64)))
    grads = {name: p.grad.numpy() for name, p in twin.named_parameters()}
    return out.detach().numpy(), xt.grad.numpy(), grads


def copy_to_torch(module, twin):
    """module's parameters and buffers into twin (same state-dict keys), as float64."""
    state = {k: torch.from_numpy(np.array(v)) for k, v in module.state_dict().items()}
    twin.load_state_dict(state)
    return twin.double()


# ------------------------------------------------------------------------------------------------
# Activations


ACTIVATIONS = [
    (nn.Sigmoid(), torch.nn.Sigmoid()),
    (nn.Tanh(), torch.nn.Tanh()),
    (nn.LeakyReLU(), torch.nn.LeakyReLU()),
    (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
    (nn.LeakyReLU(-1.5), torch.nn.LeakyReLU(-1.5)),
    (nn.Identity(54, unused="x"), torch.nn.Identity(54, unused="x")),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer,twin", ACTIVATIONS, ids=lambda v: repr(v))
@pytest.mark.parametrize("shape", [(3, 4, 5, 2), (7,), (1, 1, 1, 1), (2, 0, 3)])
def test_elementwise_activations(layer, twin, dtype, shape):
    x = random(shape, np.float64, "act", repr(layer)) * 12  # saturating values for sigmoid and tanh
    if x.size:
        x.flat[0] = 0.0  # LeakyReLU's gradient at 0 is negative_slope, as torch's
        x.flat[-1] = -90.0  # exp(90) overflows float32: the sigmoid must not
    x = x.astype(dtype)
    out = layer(x)
    g = random(shape, dtype, "act-g", repr(layer))
    gx = layer.backward(g)
    expected, expected_gx, _ = torch_run(twin, x, g)
    assert out.dtype == dtype and gx.dtype == dtype and out.shape == shape
    # one rounded function value per element; the gradients are bounded by |g| * max(1, |slope|)
    assert_close(out, expected, np.abs(expected) + np.abs(x) * (type(layer) is nn.LeakyReLU), 1, what="forward")
    assert_close(gx, expected_gx, np.abs(g) * 2, 1, what="grad_input")
    assert repr(layer) == repr(twin)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape,dim", [((4, 7), 1), ((4, 7), 0), ((2, 3, 5, 4), 1), ((2, 3, 5, 4), -1),
                                       ((5,), 0), ((3, 1), 1)])
def test_softmax(cls, dtype, shape, dim):
    layer, twin = getattr(nn, cls)(dim=dim), getattr(torch.nn, cls)(dim=dim)
    x = random(shape, np.float64, cls, shape, dim) * 20
    x.flat[0] = 500.0  # exp(500) overflows: the shift by the maximum must keep it finite
    x = x.astype(dtype)
    out = layer(x)
    g = random(shape, dtype, cls, "g", shape, dim)
    gx = layer.backward(g)
    expected, expected_gx, _ = torch_run(twin, x, g)
    depth = shape[dim]
    if cls == "Softmax":  # y = e / sum(e); gx = y * (g - sum(g * y))
        mag_out = np.abs(expected)
        mag_gx = np.abs(expected) * (np.abs(g) + (np.abs(g) * np.abs(expected)).sum(axis=dim, keepdims=True))
    else:  # y = x - max - log(sum(e)); gx = g - exp(y) * sum(g)
        mag_out = np.abs(x) + np.abs(x).max(axis=dim, keepdims=True) + np.abs(expected)
        mag_gx = np.abs(g) + np.exp(expected) * np.abs(g).sum(axis=dim, keepdims=True)
    assert np.isfinite(out).all() and out.dtype == dtype
    assert_close(out, expected, mag_out, depth, what="forward")
    assert_close(gx, expected_gx, mag_gx, depth, what="grad_input")


def test_softmax_implicit_dim_follows_torch():
    x = random((2, 3, 4), np.float64, "implicit")
    for cls in ("Softmax", "LogSoftmax"):
        with pytest.warns(UserWarning, match="Implicit dimension"):
            out = getattr(nn, cls)()(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = getattr(torch.nn, cls)()(torch.from_numpy(x)).numpy()
        assert np.allclose(out, expected, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="dim: expected a dimension in"):
        nn.Softmax(dim=3)(x)


def test_activations_inplace_and_errors():
    x = random((4, 6), np.float32, "inplace")
    expected = torch.nn.functional.leaky_relu(torch.from_numpy(x.copy()), 0.1).numpy()
    layer = nn.LeakyReLU(0.1, inplace=True)
    out = layer(x)
    assert out is x and np.array_equal(x, expected)
    assert np.array_equal(layer.backward(np.ones_like(x)), np.where(expected > 0, 1, 0.1).astype(np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Tanh().backward(x)
    with pytest.raises(TypeError, match="floating-point"):
        nn.Sigmoid()(np.arange(3))
    with pytest.raises(TypeError, match="NumPy array"):
        nn.Tanh()([1.0, 2.0])


# ------------------------------------------------------------------------------------------------
# BatchNorm2d


def bn_magnitudes(x, g, weight, bias):
    """Sums of |terms| behind BatchNorm's outputs and gradients (float64), per element."""
    axes = (0, 2, 3)
    mean = x.mean(axis=axes, keepdims=True)
    invstd = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + 1e-5)
    xhat = np.abs(x - mean) * invstd
    w, b = np.abs(weight).reshape(1, -1, 1, 1), np.abs(bias).reshape(1, -1, 1, 1)
    # forward: mean and variance are sums over the batch, then (x - mean) * invstd * w + b
    mag_out = (np.abs(x) + np.abs(mean)) * invstd * w + b
    ag = np.abs(g)
    mag_gx = invstd * w * (ag + ag.mean(axis=axes, keepdims=True) + xhat * (ag * xhat).mean(axis=axes, keepdims=True))
    return mag_out, mag_gx, (ag * xhat).sum(axis=axes), ag.sum(axis=axes)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3, 5, 7), (1, 2, 3, 1), (7, 1, 1, 1), (2, 5, 1, 13)])
@pytest.mark.parametrize("affine,bias", [(True, True), (False, True), (True, False)])
def test_batchnorm_training_step(dtype, shape, affine, bias):
    c = shape[1]
    layer = nn.BatchNorm2d(c, affine=affine, dtype=dtype, bias=bias)
    twin = torch.nn.BatchNorm2d(c, affine=affine, bias=bias).double()
    assert list(layer.state_dict()) == list(twin.state_dict()) and repr(layer) == repr(twin)
    if affine:  # non-trivial affine parameters, the same on both sides
        layer.weight.data[...] = random((c,), dtype, "bn-w") + 1.5
        if bias:
            layer.bias.data[...] = random((c,), dtype, "bn-b")
        copy_to_torch(layer, twin)
    x = (random(shape, np.float64, "bn-x", shape) * 3 + 2).astype(dtype)  # an offset mean
    out = layer(x)
    g = random(shape, dtype, "bn-g", shape)
    gx = layer.backward(g)
    expected, expected_gx, grads = torch_run(twin, x, g)
    weight = layer.weight.data if affine else np.ones(c)
    shift = layer.bias.data if affine and bias else np.zeros(c)
    mag_out, mag_gx, mag_gw, mag_gb = bn_magnitudes(x.astype(np.float64), g.astype(np.float64), weight, shift)
    depth = shape[0] * shape[2] * shape[3]
    assert out.dtype == dtype and gx.dtype == dtype
    assert_close(out, expected, mag_out, depth, what="forward")
    assert_close(gx, expected_gx, mag_gx, depth, what="grad_input")
    if affine:
        assert_close(layer.weight.grad, grads["weight"], mag_gw, depth, what="grad weight")
        if bias:
            assert_close(layer.bias.grad, grads["bias"], mag_gb, depth, what="grad bias")
        assert list(layer.state_dict())[:2] == (["weight", "bias"] if bias else ["weight", "running_mean"])
    else:
        assert list(layer.parameters()) == []
    # running statistics: momentum 0.1 of the batch mean and the unbiased batch variance
    for key in ("running_mean", "running_var"):
        value = twin.state_dict()[key].numpy()
        assert layer.state_dict()[key].dtype == dtype
        assert_close(layer.state_dict()[key], value, np.abs(value) + 1, depth, what=key)
    assert layer.num_batches_tracked.dtype == np.int64 and int(layer.num_batches_tracked) == 1


@pytest.mark.parametrize("momentum", [0.1, 0.7, None, 0.0, 1.0])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_running_stats_over_steps_and_eval(momentum, dtype):
    layer = nn.BatchNorm2d(3, momentum=momentum, eps=1e-3, dtype=dtype)
    twin = torch.nn.BatchNorm2d(3, momentum=momentum, eps=1e-3).double()
    for step in range(5):
        x = (random((4, 3, 3, 5), np.float64, "steps", step) * (step + 1) + step).astype(dtype)
        out = layer(x)
        expected = twin(torch.from_numpy(x.astype(np.float64))).detach().numpy()
        assert np.allclose(out, expected, rtol=0, atol=100 * np.finfo(dtype).eps * 10)
    state, expected_state = layer.state_dict(), twin.state_dict()
    assert int(state["num_batches_tracked"]) == 5 == int(expected_state["num_batches_tracked"])
    for key in ("running_mean", "running_var"):
        ref = expected_state[key].numpy()  # values up to ~25: a few rounded updates of each
        assert_close(state[key], ref, np.abs(ref) + 5, 5 * 60, what=key)
    # eval mode: the running statistics, as constants in the gradient
    layer.eval(), twin.eval()
    layer.weight.data[...] = [0.5, -2.0, 1.5]
    copy_to_torch(layer, twin)
    x = random((2, 3, 4, 4), dtype, "eval")
    out = layer(x)
    g = random(x.shape, dtype, "eval-g")
    gx = layer.backward(g)
    expected, expected_gx, grads = torch_run(twin, x, g)
    scale = np.abs(layer.weight.data / np.sqrt(layer.running_var + 1e-3)).reshape(1, -1, 1, 1)
    assert_close(out, expected, (np.abs(x) + np.abs(layer.running_mean).reshape(1, -1, 1, 1)) * scale + 1, 2)
    assert_close(gx, expected_gx, np.abs(g) * scale, 2, what="grad_input")
    assert_close(layer.bias.grad, grads["bias"], np.abs(g).sum(axis=(0, 2, 3)), 32, what="grad bias")
    assert int(layer.num_batches_tracked) == 5  # eval does not count


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_without_running_stats(training):
    layer = nn.BatchNorm2d(4, track_running_stats=False).double().train(training)
    twin = torch.nn.BatchNorm2d(4, track_running_stats=False).double().train(training)
    assert list(layer.state_dict()) == list(twin.state_dict()) == ["weight", "bias"]
    assert layer.running_mean is None and repr(layer) == repr(twin)
    x = random((3, 4, 2, 5), np.float64, "nostats") * 2 + 1
    g = random(x.shape, np.float64, "nostats-g")
    out = layer(x)
    gx = layer.backward(g)
    expected, expected_gx, grads = torch_run(twin, x, g)
    assert np.allclose(out, expected, rtol=1e-12, atol=1e-12)  # batch statistics in both modes
    assert np.allclose(gx, expected_gx, rtol=1e-10, atol=1e-12)
    assert np.allclose(layer.weight.grad, grads["weight"], rtol=1e-10, atol=1e-12)


def test_batchnorm_checks_and_state_dict_round_trip(tmp_path):
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        nn.BatchNorm2d(3)(np.ones((1, 3, 1, 1), np.float32))
    assert nn.BatchNorm2d(3).eval()(np.ones((1, 3, 1, 1), np.float32)).shape == (1, 3, 1, 1)
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(3)(np.ones((3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="expected 3 channels"):
        nn.BatchNorm2d(3)(np.ones((2, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm2d(3, momentum=1.5)
    layer = nn.BatchNorm2d(3)
    layer(random((4, 3, 2, 2), np.float32, "rt"))
    nn.save(layer.state_dict(), tmp_path / "bn.npz")
    fresh = nn.BatchNorm2d(3)
    fresh.load_state_dict(nn.load(tmp_path / "bn.npz"))
    for key, value in layer.state_dict().items():
        assert np.array_equal(fresh.state_dict()[key], value) and fresh.state_dict()[key].dtype == value.dtype
    twin = torch.nn.BatchNorm2d(3)
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()})
    fresh.load_state_dict(twin.state_dict())  # torch tensors load directly
    assert int(fresh.num_batches_tracked) == 1
    layer.double()
    assert layer.running_var.dtype == np.float64 and layer.num_batches_tracked.dtype == np.int64
    assert [n for n, _ in layer.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]


# ------------------------------------------------------------------------------------------------
# Adaptive pooling


def adaptive_reference(x, out_size, op):
    """float64 loops over torch's windows [floor(i*H/oh), ceil((i+1)*H/oh))."""
    oh, ow = out_size
    h, w = x.shape[-2:]
    out = np.empty((*x.shape[:-2], oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, h1 = math.floor(i * h / oh), math.ceil((i + 1) * h / oh)
            w0, w1 = math.floor(j * w / ow), math.ceil((j + 1) * w / ow)
            out[..., i, j] = op(x[..., h0:h1, w0:w1].astype(np.float64), axis=(-2, -1))
    return out


ADAPTIVE = [  # output_size, input shape: even tilings (the pooling kernels) and uneven ones
    (1, (2, 3, 7, 5)), ((1, 1), (2, 3, 8, 8)), (2, (2, 3, 8, 6)), ((7, 7), (1, 2, 14, 21)),
    ((3, 5), (2, 3, 7, 11)), ((None, 2), (2, 2, 5, 7)), (6, (1, 2, 1, 1)), (4, (2, 1, 3, 3)),
    ((5, 1), (3, 4, 13, 2)), (3, (4, 5, 5)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output_size,shape", ADAPTIVE, ids=str)
def test_adaptive_avg_pool2d(output_size, shape, dtype):
    layer, twin = nn.AdaptiveAvgPool2d(output_size), torch.nn.AdaptiveAvgPool2d(output_size)
    x = random(shape, dtype, "aavg", shape)
    out = layer(x)
    g = random(out.shape, dtype, "aavg-g", shape)
    gx = layer.backward(g)
    expected, expected_gx, _ = torch_run(twin, x, g)
    reference = adaptive_reference(x, out.shape[-2:], np.mean)
    assert out.dtype == dtype and gx.dtype == dtype
    assert out.shape == tuple(layer.output_shape(shape)) == expected.shape
    depth = max(math.ceil(shape[-2] / out.shape[-2]) + 1, 1) * (math.ceil(shape[-1] / out.shape[-1]) + 1)
    magnitude = adaptive_reference(np.abs(x), out.shape[-2:], np.mean)
    assert_close(out, reference, magnitude, depth, what="forward vs numpy")
    assert_close(out, expected, magnitude, depth, what="forward vs torch")
    assert_close(gx, expected_gx, np.abs(torch_run(twin, np.abs(x), np.abs(g))[1]), depth, what="grad_input")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output_size,shape", ADAPTIVE, ids=str)
def test_adaptive_max_pool2d(output_size, shape, dtype):
    layer = nn.AdaptiveMaxPool2d(output_size, return_indices=True)
    x = random(shape, dtype, "amax", shape)
    x.reshape(-1)[::3] = x.reshape(-1)[0]  # ties: the first maximum wins, as in torch
    out, indices = layer(x)
    g = random(out.shape, dtype, "amax-g", shape)
    gx = layer.backward(g)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    expected, expected_indices = torch.nn.functional.adaptive_max_pool2d(xt, output_size, return_indices=True)
    expected.backward(torch.from_numpy(g))
    assert np.array_equal(out, expected.detach().numpy())  # a selection: exact
    assert np.array_equal(out, adaptive_reference(x, out.shape[-2:], np.max))
    assert indices.dtype == np.int64 and np.array_equal(indices, expected_indices.numpy())
    # each input gathers the gradients of the windows it is the maximum of (a few at most)
    assert_close(gx, xt.grad.numpy().astype(np.float64), np.abs(xt.grad.numpy()) + np.abs(g).max(), 9)
    assert nn.AdaptiveMaxPool2d(output_size)(x).shape == out.shape


def test_adaptive_pool_errors():
    with pytest.raises(ValueError, match="output_size"):
        nn.AdaptiveAvgPool2d(0)
    with pytest.raises(ValueError, match="output_size"):
        nn.AdaptiveMaxPool2d((1, 2, 3))
    with pytest.raises(ValueError, match="expected 3 or 4 dimensions"):
        nn.AdaptiveAvgPool2d(1)(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="NumPy array"):
        nn.AdaptiveAvgPool2d(1)([[1.0]])
    assert repr(nn.AdaptiveAvgPool2d((7, 7))) == repr(torch.nn.AdaptiveAvgPool2d((7, 7)))


# ------------------------------------------------------------------------------------------------
# Containers: Residual and Concat


class TorchResidual(torch.nn.Module):
    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


class TorchConcat(torch.nn.Module):
    def __init__(self, branches):
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.children()], dim=1)


def residual_pair(cin, cout, stride):
    """body: conv-bn-relu-conv-bn; shortcut: 1x1 strided conv + BN where the shape changes."""
    def body(m):
        return m.Sequential(m.Conv2d(cin, cout, 3, stride, 1, bias=False), m.BatchNorm2d(cout), m.ReLU(),
                            m.Conv2d(cout, cout, 3, 1, 1, bias=False), m.BatchNorm2d(cout))

    def shortcut(m):
        if stride == 1 and cin == cout:
            return None
        return m.Sequential(m.Conv2d(cin, cout, 1, stride, bias=False), m.BatchNorm2d(cout))

    return nn.Residual(body(nn), shortcut(nn)), TorchResidual(body(torch.nn), shortcut(torch.nn))


def inception_pair(cin):
    def branches(m):
        return OrderedDict(
            b1=m.Sequential(m.Conv2d(cin, 3, 1), m.ReLU()),
            b2=m.Sequential(m.Conv2d(cin, 2, 1), m.ReLU(), m.Conv2d(2, 4, 3, padding=1), m.BatchNorm2d(4)),
            b3=m.Sequential(m.Conv2d(cin, 2, 1), m.Tanh(), m.Conv2d(2, 3, 5, padding=2)),
            b4=m.Sequential(m.MaxPool2d(3, stride=1, padding=1), m.Conv2d(cin, 2, 1)),
        )
    return nn.Concat(branches(nn)), TorchConcat(branches(torch.nn))


def check_container(module, twin, x, rtol):
    """Forward, grad_input and every parameter gradient against torch autograd, training mode,
    after a first step so that BatchNorm's running statistics differ from their start."""
    copy_to_torch(module, twin)
    module(x), twin(torch.from_numpy(x.astype(np.float64)))
    module.zero_grad()
    out = module(x)
    g = random(out.shape, x.dtype, "container-g")
    gx = module.backward(g)
    expected, expected_gx, grads = torch_run(twin, x, g)
    scale = np.abs(expected).max()
    assert out.dtype == x.dtype and gx.dtype == x.dtype
    assert np.allclose(out, expected, rtol=rtol, atol=rtol * scale)
    assert np.allclose(gx, expected_gx, rtol=rtol, atol=rtol * np.abs(expected_gx).max())
    params = dict(module.named_parameters())
    assert list(params) == list(grads)
    # a conv bias before BatchNorm has a zero gradient (BN removes the mean): rounding noise on
    # both sides, so the absolute bound scales with the largest parameter gradient
    grad_scale = max(np.abs(grad).max() for grad in grads.values())
    for name, grad in grads.items():
        assert np.allclose(params[name].grad, grad, rtol=rtol, atol=rtol * grad_scale), name
    for name, value in twin.state_dict().items():
        assert np.allclose(module.state_dict()[name], value.numpy(), rtol=rtol, atol=rtol), name
    assert module.output_shape(x.shape) == out.shape


# float32 bounds: a few hundred terms per sum through two convolutions and two BatchNorms
RTOL = {np.float64: 1e-10, np.float32: 2e-4}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cin,cout,stride", [(4, 4, 1), (3, 6, 2), (4, 5, 1)])
def test_residual_against_torch(cin, cout, stride, dtype):
    nn.manual_seed(cin * 10 + cout)
    module, twin = residual_pair(cin, cout, stride)
    module.to(dtype)
    assert list(module.state_dict()) == list(twin.state_dict())
    x = random((3, cin, 9, 7), dtype, "residual", cin, cout, stride)
    check_container(module, twin, x, RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_concat_against_torch(dtype):
    nn.manual_seed(5)
    module, twin = inception_pair(3)
    module.to(dtype)
    assert list(module.state_dict()) == list(twin.state_dict())
    x = random((2, 3, 6, 5), dtype, "concat")
    check_container(module, twin, x, RTOL[dtype])


def test_containers_split_and_sum_gradients_exactly():
    """With Identity paths the arithmetic is exact: the gradients must add up bit for bit."""
    x = random((2, 3, 4, 4), np.float64, "exact")
    g = random((2, 3, 4, 4), np.float64, "exact-g")
    residual = nn.Residual(nn.Identity())
    assert np.array_equal(residual(x), 2 * x) and np.array_equal(residual.backward(g), 2 * g)
    concat = nn.Concat(nn.Identity(), nn.Sequential(nn.Identity()), nn.Identity())
    out = concat(x)
    gout = random(out.shape, np.float64, "exact-cat")
    assert np.array_equal(out, np.concatenate([x, x, x], axis=1))
    assert np.array_equal(concat.backward(gout), gout[:, :3] + gout[:, 3:6] + gout[:, 6:])
    assert concat.output_shape(x.shape) == (2, 9, 4, 4)
    leaky = nn.Residual(nn.LeakyReLU(0.5), nn.Identity())
    leaky(x)
    assert leaky.backward(g, need_input_grad=False) is None


def test_container_errors():
    with pytest.raises(ValueError, match="body output"):
        nn.Residual(nn.Conv2d(3, 4, 1))(np.ones((1, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match="body output"):
        nn.Residual(nn.Conv2d(3, 3, 1, stride=2)).output_shape((1, 3, 4, 4))
    with pytest.raises(TypeError, match="body: expected a Module"):
        nn.Residual(lambda x: x)
    with pytest.raises(ValueError, match="at least one branch"):
        nn.Concat()
    with pytest.raises(ValueError, match="differ outside dim"):
        nn.Concat(nn.Identity(), nn.MaxPool2d(2)).output_shape((1, 2, 4, 4))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Concat(nn.Identity()).backward(np.ones((1, 1, 1, 1)))

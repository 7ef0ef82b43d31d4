"""Initialisation as ``torch.nn.init``, drawing from convforge's own seeded generator."""

import math

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed the generator that initialisation and Dropout draw from (as ``torch.manual_seed``)."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator():
    return _generator


def _array(tensor):
    return tensor.data if hasattr(tensor, "data") and not isinstance(tensor, np.ndarray) else tensor


def calculate_gain(nonlinearity, param=None):
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    raise ValueError(f"nonlinearity: unsupported value {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    shape = _array(tensor).shape
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need at least 2 dimensions, got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill ``tensor`` in place with U(a, b) draws."""
    data = _array(tensor)
    gen = _generator if generator is None else generator
    if data.dtype in (np.float32, np.float64) and data.flags.c_contiguous:
        draws = gen.random(out=data, dtype=data.dtype)  # in place: no temporary for VGG-sized layers
    else:
        draws = gen.random(data.shape)
    np.multiply(draws, b - a, out=draws)
    np.add(draws, a, out=draws)
    if draws is not data:
        data[...] = draws
    return tensor


def zeros_(tensor):
    _array(tensor)[...] = 0
    return tensor


def _kaiming_fan(tensor, mode):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode: expected 'fan_in' or 'fan_out', got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He initialisation: U(-bound, bound) with bound = gain * sqrt(3 / fan)."""
    fan = _kaiming_fan(tensor, mode)
    if fan == 0:
        return tensor
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound, generator)


def constant_(tensor, val):
    _array(tensor)[...] = val
    return tensor


def ones_(tensor):
    return constant_(tensor, 1)


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill ``tensor`` in place with N(mean, std^2) draws."""
    data = _array(tensor)
    gen = _generator if generator is None else generator
    if data.dtype in (np.float32, np.float64) and data.flags.c_contiguous:
        gen.standard_normal(out=data, dtype=data.dtype)  # in place: no temporary for VGG-sized layers
    else:
        data[...] = gen.standard_normal(data.shape)
    np.multiply(data, std, out=data)
    np.add(data, mean, out=data)
    return tensor


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """N(mean, std^2) draws restricted to [a, b] (redrawn until inside), as torch's."""
    data = _array(tensor)
    gen = _generator if generator is None else generator
    values = gen.standard_normal(data.size) * std + mean
    outside = (values < a) | (values > b)
    while outside.any():
        values[outside] = gen.standard_normal(int(outside.sum())) * std + mean
        outside = (values < a) | (values > b)
    data[...] = values.reshape(data.shape)
    return tensor


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He initialisation: N(0, std^2) with std = gain / sqrt(fan)."""
    fan = _kaiming_fan(tensor, mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)

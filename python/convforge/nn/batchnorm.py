"""BatchNorm2d, as ``torch.nn.BatchNorm2d``."""

import numpy as np

from .module import Module
from .parameter import Parameter


class BatchNorm2d(Module):
    """Batch normalisation over the N, H and W of NCHW input, per channel, as
    ``torch.nn.BatchNorm2d`` (same arguments, defaults, initialisation and state-dict keys).

    In training mode (or without running statistics) it normalises with the batch's mean and
    biased variance, and updates ``running_mean`` / ``running_var`` (the latter with the unbiased
    variance) by ``momentum``, or by a cumulative average when ``momentum`` is None, counting
    batches in ``num_batches_tracked``. In eval mode with running statistics it uses them.
    ``bias=False`` (keyword-only, as in torch 2.13) keeps ``weight`` without ``bias``. Statistics
    are accumulated in float64 for float32 input."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None, *, bias=True):
        super().__init__()
        if not isinstance(num_features, (int, np.integer)) or isinstance(num_features, bool) or num_features <= 0:
            raise ValueError(f"num_features: expected a positive integer, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"eps: expected a positive number, got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum: expected a number in [0, 1] or None, got {momentum!r}")
        if device not in (None, "cpu"):
            raise ValueError(f"device: only 'cpu' is supported, got {device!r}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        if affine:
            self.weight = Parameter(np.ones(self.num_features, dtype))
            if bias:
                self.bias = Parameter(np.zeros(self.num_features, dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dtype))
            self.register_buffer("running_var", np.ones(self.num_features, dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self._saved = None

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            self.weight.data[...] = 1
            if self.bias is not None:
                self.bias.data[...] = 0

    def _check(self, input):
        if not isinstance(input, np.ndarray):
            raise TypeError(f"input: expected a NumPy array, got {type(input).__name__}")
        if input.dtype.kind != "f":
            raise TypeError(f"input: expected a floating-point array, got dtype {input.dtype}")
        if input.ndim != 4:
            raise ValueError(f"input: expected 4D input (N, C, H, W), got shape {input.shape}")
        if input.shape[1] != self.num_features:
            raise ValueError(f"input: BatchNorm2d expected {self.num_features} channels, got shape {input.shape}")

    def forward(self, input):
        self._check(input)
        dtype = input.dtype
        shape = (1, -1, 1, 1)
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            count = input.shape[0] * input.shape[2] * input.shape[3]
            if count <= 1 and self.training:
                raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
            mean = input.mean(axis=(0, 2, 3), dtype=np.float64)
            centered = input - mean.astype(dtype).reshape(shape)
            var = np.square(centered, dtype=np.float64).mean(axis=(0, 2, 3)) if count else np.full_like(mean, np.nan)
            if self.training and self.track_running_stats:
                self.num_batches_tracked += 1
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * (count / (count - 1))
                self.running_mean *= dtype.type(1 - factor)
                self.running_mean += (factor * mean).astype(dtype)
                self.running_var *= dtype.type(1 - factor)
                self.running_var += (factor * unbiased).astype(dtype)
            invstd = (1.0 / np.sqrt(var + self.eps)).astype(dtype)
        else:
            centered = input - self.running_mean.reshape(shape)
            invstd = (1.0 / np.sqrt(self.running_var.astype(np.float64) + self.eps)).astype(dtype)
        normalized = centered
        normalized *= invstd.reshape(shape)  # centered is a fresh array: normalise in place
        if self.affine:
            out = normalized * self.weight.data.reshape(shape)
            if self.bias is not None:
                out += self.bias.data.reshape(shape)
        else:
            out = normalized.copy()
        self._saved = (normalized, invstd, use_batch_stats)
        return out

    def backward(self, grad_output, need_input_grad=True):
        if self._saved is None:
            raise RuntimeError("BatchNorm2d.backward called before forward")
        normalized, invstd, use_batch_stats = self._saved
        self._saved = None
        dtype = normalized.dtype
        sum_g = grad_output.sum(axis=(0, 2, 3), dtype=np.float64)
        sum_g_xhat = np.einsum("nchw,nchw->c", grad_output, normalized, dtype=np.float64)
        if self.affine:
            if self.weight.requires_grad:
                self.weight.accumulate_grad(sum_g_xhat.astype(dtype))
            if self.bias is not None and self.bias.requires_grad:
                self.bias.accumulate_grad(sum_g.astype(dtype))
        if not need_input_grad:
            return None
        scale = invstd if not self.affine else invstd * self.weight.data
        shape = (1, -1, 1, 1)
        if not use_batch_stats:  # the statistics are constants
            return grad_output * scale.reshape(shape)
        # d/dx of (x - mean) * invstd through the batch mean and variance:
        # gx = scale * (g - mean(g) - xhat * mean(g * xhat))
        count = normalized.size // normalized.shape[1]
        mean_g = (sum_g / count).astype(dtype).reshape(shape)
        mean_g_xhat = (sum_g_xhat / count).astype(dtype).reshape(shape)
        grad_input = grad_output - mean_g
        grad_input -= normalized * mean_g_xhat
        grad_input *= scale.reshape(shape)
        return grad_input

    def output_shape(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] != self.num_features:
            raise ValueError(f"input: BatchNorm2d expected 4D input with {self.num_features} channels, "
                             f"got shape {tuple(input_shape)}")
        return tuple(input_shape)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")

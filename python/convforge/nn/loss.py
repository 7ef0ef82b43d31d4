"""Losses: CrossEntropyLoss (fused, stable log-softmax) and MSELoss.

``loss = criterion(input, target)`` returns the loss (a NumPy scalar for 'mean' and 'sum', so
``loss.item()`` works as in torch); ``criterion.backward(grad_output=1.0)`` returns the gradient
with respect to ``input``, ready for ``model.backward``."""

import numpy as np

from .module import Module

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._saved = None

    def _grad(self, grad_output, n, dtype):
        """grad_output as (n,) per-sample weights for 'none', else as a scalar."""
        g = np.asarray(grad_output, dtype)
        if self.reduction == "none":
            if g.size != n:
                raise ValueError(f"grad_output: expected {n} values for reduction='none', got shape {g.shape}")
            return g.reshape(n)
        if g.size != 1:
            raise ValueError(f"grad_output: expected a scalar, got shape {g.shape}")
        return g.reshape(())

    def extra_repr(self):
        return ""


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy between logits (N, C) (or (C,)) and class indices (N,) (or a
    scalar), as ``torch.nn.CrossEntropyLoss``: optional per-class ``weight``, ``ignore_index``,
    ``reduction`` ('mean' divides by the summed weights of the counted targets)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        if label_smoothing != 0.0:
            raise ValueError(f"label_smoothing: only 0.0 is supported, got {label_smoothing}")
        self.weight = None if weight is None else np.asarray(weight)
        self.ignore_index = int(ignore_index)
        self.label_smoothing = 0.0

    def forward(self, input, target):
        if not isinstance(input, np.ndarray) or input.dtype.kind != "f":
            raise TypeError(f"input: expected a floating-point NumPy array, got {getattr(input, 'dtype', type(input).__name__)}")
        target = np.asarray(target)
        if target.dtype.kind not in "iu":
            raise TypeError(f"target: expected integer class indices, got dtype {target.dtype}")
        unbatched = input.ndim == 1
        logits = input[None] if unbatched else input
        labels = target.reshape(1) if unbatched else target
        if logits.ndim != 2:
            raise ValueError(f"input: expected (N, C) or (C,) logits, got shape {input.shape}")
        n, c = logits.shape
        if labels.shape != (n,):
            raise ValueError(f"target: expected shape ({n},) to match input {input.shape}, got {target.shape}")
        valid = labels != self.ignore_index
        if np.any((labels[valid] < 0) | (labels[valid] >= c)):
            raise ValueError(f"target: class indices must be in [0, {c}), got values from "
                             f"{labels[valid].min()} to {labels[valid].max()}")
        safe = np.where(valid, labels, 0)
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        sums = exp.sum(axis=1, keepdims=True)
        log_probs_target = shifted[np.arange(n), safe] - np.log(sums[:, 0])
        w = np.ones(n, logits.dtype) if self.weight is None else self.weight.astype(logits.dtype)[safe]
        w = np.where(valid, w, 0).astype(logits.dtype)
        losses = -w * log_probs_target
        total = w.sum()
        self._saved = (exp / sums, safe, w, total, unbatched, input.shape)
        if self.reduction == "none":
            return losses[0] if unbatched else losses
        if self.reduction == "sum":
            return losses.sum()
        return losses.sum() / total if total else logits.dtype.type(np.nan)

    def backward(self, grad_output=1.0):
        if self._saved is None:
            raise RuntimeError("CrossEntropyLoss.backward called before forward")
        probs, labels, w, total, unbatched, shape = self._saved
        self._saved = None
        n = probs.shape[0]
        scale = w * self._grad(grad_output, n, probs.dtype)
        if self.reduction == "mean":
            scale = scale / total if total else scale * 0
        grad = probs
        grad[np.arange(n), labels] -= 1
        grad *= scale[:, None].astype(probs.dtype)
        return grad.reshape(shape)


class MSELoss(_Loss):
    """Mean squared error, as ``torch.nn.MSELoss``."""

    def forward(self, input, target):
        input, target = np.asarray(input), np.asarray(target)
        if input.shape != target.shape:
            raise ValueError(f"target: expected shape {input.shape} like input, got {target.shape}")
        diff = input - target
        self._saved = diff
        sq = diff * diff
        if self.reduction == "none":
            return sq
        return sq.sum() if self.reduction == "sum" else sq.mean()

    def backward(self, grad_output=1.0):
        if self._saved is None:
            raise RuntimeError("MSELoss.backward called before forward")
        diff, self._saved = self._saved, None
        if self.reduction == "none":
            g = np.asarray(grad_output, diff.dtype)
            if g.shape != diff.shape:
                raise ValueError(f"grad_output: expected shape {diff.shape}, got {g.shape}")
        else:
            g = self._grad(grad_output, 1, diff.dtype)
            if self.reduction == "mean":
                g = g / max(diff.size, 1)
        return (2 * g * diff).astype(diff.dtype, copy=False)

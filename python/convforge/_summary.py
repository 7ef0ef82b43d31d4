"""convforge.summary(): a per-layer table of output shapes, parameter counts and activation
memory, with totals, as torchsummary and Keras print. Shapes come from each layer's
``output_shape`` (no convolution is run), so summarising VGG-16 is instant."""

import math
import sys
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LayerRow:
    name: str
    type: str
    output_shape: tuple
    params: int
    activation_bytes: int


@dataclass
class ModelSummary:
    input_shape: tuple
    output_shape: tuple
    rows: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    input_bytes: int = 0
    activation_bytes: int = 0
    param_bytes: int = 0
    batch_size: int = -1

    @property
    def non_trainable_params(self):
        return self.total_params - self.trainable_params

    def _shape(self, shape):
        return str([self.batch_size, *shape[1:]]) if shape else "[]"

    def totals(self):
        mb = 1024.0**2
        return [
            ("Total params", f"{self.total_params:,}"),
            ("Trainable params", f"{self.trainable_params:,}"),
            ("Non-trainable params", f"{self.non_trainable_params:,}"),
            ("Input size (MB)", f"{self.input_bytes / mb:.2f}"),
            ("Forward/backward pass size (MB)", f"{2 * self.activation_bytes / mb:.2f}"),
            ("Params size (MB)", f"{self.param_bytes / mb:.2f}"),
            ("Estimated total size (MB)",
             f"{(self.input_bytes + 2 * self.activation_bytes + self.param_bytes) / mb:.2f}"),
        ]

    def __str__(self):
        header = ("Layer (type)", "Output Shape", "Param #", "Activations")
        body = [(f"{r.name} ({r.type})", self._shape(r.output_shape), f"{r.params:,}",
                 _bytes(r.activation_bytes)) for r in self.rows]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(4)]
        line = "-" * (sum(widths) + 6)

        def fmt(row):
            return f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]:>{widths[3]}}"

        out = [line, fmt(header), "=" * len(line), *map(fmt, body), "=" * len(line)]
        out += [f"{k}: {v}" for k, v in self.totals()]
        return "\n".join(out + [line])


def _bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0


def _is_leaf(module):
    return not any(True for _ in module.children())


def summary(model, input_size, batch_size=-1, dtype=np.float32, *, file=None, print_summary=True):
    """Print (to ``file``, default stdout) and return a :class:`ModelSummary` of ``model`` for an
    input of shape ``input_size`` (without the batch dimension, e.g. ``(3, 224, 224)``).

    Activation memory is per sample when ``batch_size`` is -1 (the default, printed as -1 like
    torchsummary), else for the whole batch. Uses rich for the table when it is installed."""
    input_size = tuple(int(d) for d in input_size)
    itemsize = np.dtype(dtype).itemsize
    n = 1 if batch_size == -1 else int(batch_size)
    rows = []
    leaves = [(name, m) for name, m in model.named_modules() if _is_leaf(m)]
    patched = []

    def recorder(name, module, original):
        def output_shape(shape):
            out = tuple(original(shape))
            params = sum(p.numel() for p in module.parameters())
            rows.append(LayerRow(name or type(module).__name__, type(module).__name__, out, params,
                                 math.prod(out) * itemsize))
            return out
        return output_shape

    try:
        for name, module in leaves:
            if module is model:
                continue
            module.output_shape = recorder(name, module, module.output_shape)
            patched.append(module)
        output = tuple(model.output_shape((n, *input_size)))
        if not patched:  # the model is a single layer
            rows.append(LayerRow(type(model).__name__, type(model).__name__, output,
                                 sum(p.numel() for p in model.parameters()), math.prod(output) * itemsize))
    finally:
        for module in patched:
            object.__delattr__(module, "output_shape")

    params = list(model.parameters())
    result = ModelSummary(
        input_shape=(batch_size, *input_size), output_shape=output, rows=rows,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        input_bytes=math.prod((n, *input_size)) * itemsize,
        activation_bytes=sum(r.activation_bytes for r in rows),
        param_bytes=sum(p.data.nbytes for p in params), batch_size=batch_size)
    if print_summary:
        _print(result, sys.stdout if file is None else file)
    return result


def _print(result, file):
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(result, file=file)
        return
    table = Table(title="Model summary", show_footer=False)
    table.add_column("Layer (type)")
    table.add_column("Output Shape", justify="right")
    table.add_column("Param #", justify="right")
    table.add_column("Activations", justify="right")
    for r in result.rows:
        table.add_row(f"{r.name} ({r.type})", result._shape(r.output_shape), f"{r.params:,}",
                      _bytes(r.activation_bytes))
    console = Console(file=file)
    console.print(table)
    for key, value in result.totals():
        console.print(f"{key}: {value}", highlight=False)

"""Containers: Sequential (a chain), Residual (``body(x) + shortcut(x)``) and Concat (parallel
branches joined along the channels). Each backward is the forward read backwards: a chain runs
its modules' backward in reverse order, a value used twice (the input of a residual block or of
parallel branches) gets the sum of its users' gradients, and a concatenation's gradient is split
into the pieces each branch produced."""

from collections import OrderedDict

import numpy as np

from .module import Module


class Sequential(Module):
    """``Sequential(m0, m1, ...)`` or ``Sequential(OrderedDict(name=module, ...))``, as torch.

    ``backward(grad_output, need_input_grad=True)`` runs each module's backward in reverse order;
    with ``need_input_grad=False`` the first module may skip its input gradient (a first
    convolution then computes only its weight and bias gradients)."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(args):
                self.add_module(str(index), module)

    def _layers(self):
        return [m for m in self._modules.values() if m is not None]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        modules = list(self._modules.values())
        if not -len(modules) <= index < len(modules):
            raise IndexError(f"index {index} is out of range for a Sequential of {len(modules)}")
        return modules[index]

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def forward(self, input):
        for module in self._layers():
            input = module(input)
        return input

    def backward(self, grad_output, need_input_grad=True):
        layers = self._layers()
        for i in range(len(layers) - 1, -1, -1):
            grad_output = layers[i].backward(grad_output, need_input_grad=need_input_grad or i > 0)
        return grad_output

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for module in self._layers():
            shape = module.output_shape(shape)
        return shape


def _named(args):
    if len(args) == 1 and isinstance(args[0], OrderedDict):
        return list(args[0].items())
    return [(str(i), m) for i, m in enumerate(args)]


class Residual(Module):
    """``body(x) + shortcut(x)``, the residual connection of ResNet; ``shortcut=None`` is the
    identity (a projection such as a 1x1 stride-2 convolution with BatchNorm matches the shapes
    where ``body`` changes them). State-dict keys are ``body.*`` and ``shortcut.*``.

    backward: the output's gradient goes to both paths unchanged, and the input's gradient is the
    sum of what comes back from each."""

    def __init__(self, body, shortcut=None):
        super().__init__()
        if not isinstance(body, Module):
            raise TypeError(f"body: expected a Module, got {type(body).__name__}")
        if shortcut is not None and not isinstance(shortcut, Module):
            raise TypeError(f"shortcut: expected a Module or None, got {type(shortcut).__name__}")
        self.body = body
        self.shortcut = shortcut

    def forward(self, input):
        out = self.body(input)
        skip = input if self.shortcut is None else self.shortcut(input)
        if out.shape != skip.shape:
            raise ValueError(f"Residual: body output {out.shape} and shortcut output {skip.shape} differ; "
                             "give a shortcut that matches the shapes")
        return out + skip

    def backward(self, grad_output, need_input_grad=True):
        grad_body = self.body.backward(grad_output, need_input_grad=need_input_grad)
        if self.shortcut is None:
            grad_skip = grad_output
        else:
            grad_skip = self.shortcut.backward(grad_output, need_input_grad=need_input_grad)
        if not need_input_grad:
            return None
        return grad_body + grad_skip

    def output_shape(self, input_shape):
        out = tuple(self.body.output_shape(input_shape))
        skip = tuple(input_shape) if self.shortcut is None else tuple(self.shortcut.output_shape(input_shape))
        if out != skip:
            raise ValueError(f"Residual: body output {out} and shortcut output {skip} differ")
        return out


class Concat(Module):
    """Parallel branches on the same input, joined along ``dim`` (the channels by default), as
    GoogLeNet's Inception module: ``Concat(b0, b1, ...)`` or ``Concat(OrderedDict(name=b, ...))``.

    backward: each branch gets its own slice of the output's gradient, and the input's gradient
    is the sum of the branches' input gradients."""

    def __init__(self, *args, dim=1):
        super().__init__()
        for name, module in _named(args):
            if not isinstance(module, Module):
                raise TypeError(f"branch {name}: expected a Module, got {type(module).__name__}")
            self.add_module(name, module)
        if not self._modules:
            raise ValueError("Concat: expected at least one branch")
        self.dim = dim
        self._sizes = None

    def _branches(self):
        return [m for m in self._modules.values() if m is not None]

    def forward(self, input):
        outs = [branch(input) for branch in self._branches()]
        self._sizes = [out.shape[self.dim] for out in outs]
        return np.concatenate(outs, axis=self.dim)

    def backward(self, grad_output, need_input_grad=True):
        if self._sizes is None:
            raise RuntimeError("Concat.backward called before forward")
        pieces = np.split(grad_output, np.cumsum(self._sizes)[:-1], axis=self.dim)
        self._sizes = None
        grad_input = None
        for branch, piece in zip(self._branches(), pieces):
            g = branch.backward(np.ascontiguousarray(piece), need_input_grad=need_input_grad)
            if need_input_grad:
                grad_input = g if grad_input is None else grad_input + g
        return grad_input

    def output_shape(self, input_shape):
        shapes = [list(branch.output_shape(input_shape)) for branch in self._branches()]
        dim = self.dim % len(shapes[0])
        for s in shapes[1:]:
            if s[:dim] + s[dim + 1:] != shapes[0][:dim] + shapes[0][dim + 1:]:
                raise ValueError(f"Concat: branch outputs {[tuple(t) for t in shapes]} differ outside dim {self.dim}")
        shapes[0][dim] = sum(s[dim] for s in shapes)
        return tuple(shapes[0])

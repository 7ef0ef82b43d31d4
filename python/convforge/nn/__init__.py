"""Layers, losses and containers shaped like ``torch.nn``, on convforge's kernels.

There is no autograd: each module's ``forward`` keeps what its gradient needs and
``backward(grad_output)`` accumulates parameter gradients and returns the input gradient::

    out = model(x)
    loss = criterion(out, y)
    optimizer.zero_grad()
    model.backward(criterion.backward(), need_input_grad=False)
    optimizer.step()
"""

from . import init
from .activation import Dropout, ReLU
from .container import Sequential
from .conv import Conv2d
from .init import manual_seed
from .linear import Flatten, Linear
from .loss import CrossEntropyLoss, MSELoss
from .module import Module
from .parameter import Parameter
from .pooling import AvgPool2d, MaxPool2d
from .serialization import load, save

__all__ = [
    "AvgPool2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "Linear",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "init",
    "load",
    "manual_seed",
    "save",
]

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
from .activation import Dropout, Identity, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .batchnorm import BatchNorm2d
from .container import Concat, Residual, Sequential
from .conv import Conv2d
from .init import manual_seed
from .linear import Flatten, Linear
from .loss import CrossEntropyLoss, MSELoss
from .module import Module
from .parameter import Parameter
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from .serialization import load, load_torch, save

__all__ = [
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "Concat",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "Identity",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "init",
    "load",
    "load_torch",
    "manual_seed",
    "save",
]

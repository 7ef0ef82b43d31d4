"""Ready-made models: LeNet-5, small VGG and ResNet networks for 32x32 inputs, and the ImageNet
networks of the CNN lectures (AlexNet, VGG-16, ResNet-18/34/50, GoogLeNet) with torchvision's
module layout and parameter names, so a torchvision state dict loads into them::

    model = models.resnet18(weights="resnet18-f37072fd.pth")   # torch checkpoint (needs torch) or .npz
    model.fc = nn.Linear(512, 10)                               # transfer learning: a new head

The ImageNet networks are initialised as torchvision initialises them."""

import math
import os
from collections import OrderedDict

import numpy as np

from . import nn

VGG16_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
VGG_SMALL_CONFIG = [16, 16, "M", 32, 32, "M", 64, 64, "M"]


# ------------------------------------------------------------------------------------------------
# Weights


def load_weights(model, weights, strict=True, ignore_prefixes=()):
    """Load ``weights`` into ``model`` and return it: a state dict (NumPy arrays or torch
    tensors), a ``.npz`` file (:func:`convforge.nn.load`), or any other file, read with
    ``torch.load(weights_only=True)`` (:func:`convforge.nn.load_torch`; needs torch). Keys that
    start with one of ``ignore_prefixes`` are dropped first (GoogLeNet's auxiliary classifiers).
    Checkpoints older than BatchNorm's ``num_batches_tracked`` (some of torchvision's) load with
    it set to 0, as torch loads them."""
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        weights = nn.load(path) if path.endswith(".npz") else nn.load_torch(path)
    state = OrderedDict((k, v) for k, v in weights.items() if not str(k).startswith(tuple(ignore_prefixes)))
    for key in model.state_dict():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = np.zeros((), np.int64)
    model.load_state_dict(state, strict=strict)
    return model


# ------------------------------------------------------------------------------------------------
# LeNet-5


def lenet5(num_classes=10, in_channels=1):
    """LeNet-5 with ReLU and max pooling, for 1x32x32 inputs (MNIST padded by 2, digits upsampled)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes),
    )


# ------------------------------------------------------------------------------------------------
# AlexNet and VGG


def make_vgg_features(config, in_channels=3):
    layers = []
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Sequential):
    """``features`` -> ``avgpool`` -> flatten -> ``classifier``, as torchvision's VGG and AlexNet
    (``avgpool=None`` leaves the pooling out, for networks sized for one input size)."""

    def __init__(self, features, classifier, avgpool=None):
        super().__init__(OrderedDict(features=features, avgpool=avgpool, flatten=nn.Flatten(),
                                     classifier=classifier))


def _vgg_init(model):
    # torchvision's VGG initialisation
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return model


def vgg16(num_classes=1000, dropout=0.5, weights=None):
    """VGG-16 (configuration D), torchvision's ``vgg16``: 138,357,544 parameters. Any input of
    at least 32x32 (the adaptive pooling makes the classifier's input 512x7x7)."""
    classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(dropout),
        nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(dropout),
        nn.Linear(4096, num_classes),
    )
    model = _vgg_init(VGG(make_vgg_features(VGG16_CONFIG), classifier, nn.AdaptiveAvgPool2d((7, 7))))
    return model if weights is None else load_weights(model, weights)


def vgg_small(num_classes=10, in_channels=1, dropout=0.5):
    """A VGG-style CNN for 32x32 inputs: three blocks of 3x3 convolutions (16, 32, 64 channels)."""
    classifier = nn.Sequential(
        nn.Linear(64 * 4 * 4, 128), nn.ReLU(True), nn.Dropout(dropout), nn.Linear(128, num_classes),
    )
    return VGG(make_vgg_features(VGG_SMALL_CONFIG, in_channels), classifier)


def alexnet(num_classes=1000, dropout=0.5, weights=None):
    """AlexNet as torchvision's ``alexnet`` (the one-GPU variant of "One weird trick"):
    61,100,840 parameters, for 3x224x224 inputs (any size from 63x63: adaptive 6x6 pooling)."""
    features = nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )
    classifier = nn.Sequential(
        nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
        nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )
    model = VGG(features, classifier, nn.AdaptiveAvgPool2d((6, 6)))
    return model if weights is None else load_weights(model, weights)


# ------------------------------------------------------------------------------------------------
# ResNet


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class _ResidualBlock(nn.Module):
    """``relu(body(x) + shortcut(x))`` with torchvision's child names: the body is the chain
    ``_body_names`` and the shortcut is ``downsample`` (None: the identity). Backward sends the
    gradient after the final ReLU down both paths and sums what comes back, as
    :class:`convforge.nn.Residual`."""

    _body_names = ()

    def _body(self):
        return [getattr(self, name) for name in self._body_names]

    def forward(self, x):
        out = x
        for layer in self._body():
            out = layer(out)
        out += x if self.downsample is None else self.downsample(x)  # out is fresh: add in place
        return self.relu(out)

    def backward(self, grad_output, need_input_grad=True):
        g = self.relu.backward(grad_output)
        body = self._body()
        grad_body = g
        for i in range(len(body) - 1, -1, -1):
            grad_body = body[i].backward(grad_body, need_input_grad=need_input_grad or i > 0)
        grad_skip = g if self.downsample is None else self.downsample.backward(g, need_input_grad)
        return grad_body + grad_skip if need_input_grad else None

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._body():
            shape = layer.output_shape(shape)
        skip = tuple(input_shape) if self.downsample is None else self.downsample.output_shape(input_shape)
        if tuple(skip) != tuple(shape):
            raise ValueError(f"{type(self).__name__}: body output {shape} and shortcut output {skip} differ")
        return self.relu.output_shape(shape)


class BasicBlock(_ResidualBlock):
    """Two 3x3 convolutions with BatchNorm (ResNet-18/34)."""

    expansion = 1
    _body_names = ("conv1", "bn1", "relu1", "conv2", "bn2")

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)
        self.stride = stride


class Bottleneck(_ResidualBlock):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision's ResNet v1.5), 1x1 expand by 4
    (ResNet-50)."""

    expansion = 4
    _body_names = ("conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "conv3", "bn3")

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)
        self.stride = stride


class ResNet(nn.Sequential):
    """torchvision's ResNet: stem (``conv1``, ``bn1``, ``relu``, ``maxpool``), stages ``layer1``
    ... of residual blocks (each stage after the first halves the size), global average pooling
    and ``fc``. ``widths``, ``stem_kernel_size``, ``stem_stride`` and ``stem_pool`` size it for
    small images; the defaults are ImageNet's."""

    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False, in_channels=3,
                 widths=(64, 128, 256, 512), stem_kernel_size=7, stem_stride=2, stem_pool=True):
        if len(layers) != len(widths):
            raise ValueError(f"layers: expected {len(widths)} stage sizes (one per width), got {layers!r}")
        stem_width = widths[0]
        modules = OrderedDict(
            conv1=nn.Conv2d(in_channels, stem_width, kernel_size=stem_kernel_size, stride=stem_stride,
                            padding=stem_kernel_size // 2, bias=False),
            bn1=nn.BatchNorm2d(stem_width),
            relu=nn.ReLU(inplace=True),
            maxpool=nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem_pool else None,
        )
        inplanes = stem_width
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(conv1x1(inplanes, planes * block.expansion, stride),
                                           nn.BatchNorm2d(planes * block.expansion))
            stage = [block(inplanes, planes, stride, downsample)]
            inplanes = planes * block.expansion
            stage += [block(inplanes, planes) for _ in range(1, blocks)]
            modules[f"layer{i + 1}"] = nn.Sequential(*stage)
        modules["avgpool"] = nn.AdaptiveAvgPool2d((1, 1))
        modules["flatten"] = nn.Flatten()
        modules["fc"] = nn.Linear(inplanes, num_classes)
        super().__init__(modules)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:  # each block starts as the identity
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)


def resnet18(num_classes=1000, weights=None, **kwargs):
    """ResNet-18, torchvision's ``resnet18``: 11,689,512 parameters."""
    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes, **kwargs)
    return model if weights is None else load_weights(model, weights)


def resnet34(num_classes=1000, weights=None, **kwargs):
    """ResNet-34, torchvision's ``resnet34``: 21,797,672 parameters."""
    model = ResNet(BasicBlock, [3, 4, 6, 3], num_classes, **kwargs)
    return model if weights is None else load_weights(model, weights)


def resnet50(num_classes=1000, weights=None, **kwargs):
    """ResNet-50, torchvision's ``resnet50`` (v1.5): 25,557,032 parameters."""
    model = ResNet(Bottleneck, [3, 4, 6, 3], num_classes, **kwargs)
    return model if weights is None else load_weights(model, weights)


def resnet_small(num_classes=10, in_channels=1):
    """A ResNet for 32x32 inputs: a 3x3 stride-2 convolution (16 channels) and 3x3 stride-2 max
    pooling to 8x8 (the digits hold 8x8 pixels of information), three stages of one basic block
    each (16, 32, 64 channels; 8x8, 4x4, 2x2), global average pooling and one linear layer:
    77,754 parameters for 10 classes."""
    return ResNet(BasicBlock, [1, 1, 1], num_classes, in_channels=in_channels, widths=(16, 32, 64),
                  stem_kernel_size=3, stem_stride=2, stem_pool=True)


# ------------------------------------------------------------------------------------------------
# GoogLeNet


class BasicConv2d(nn.Sequential):
    """Convolution without bias, BatchNorm (eps 0.001) and ReLU: GoogLeNet's unit."""

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__(OrderedDict(conv=nn.Conv2d(in_channels, out_channels, bias=False, **kwargs),
                                     bn=nn.BatchNorm2d(out_channels, eps=0.001),
                                     relu=nn.ReLU(inplace=True)))


class Inception(nn.Concat):
    """GoogLeNet's Inception module: 1x1, 1x1 -> 3x3, 1x1 -> "5x5" and 3x3 max pool -> 1x1
    branches concatenated along the channels. As in torchvision (and so its checkpoints), the
    "5x5" branch uses a 3x3 kernel."""

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__(OrderedDict(
            branch1=BasicConv2d(in_channels, ch1x1, kernel_size=1),
            branch2=nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                  BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1)),
            branch3=nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                  BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1)),
            branch4=nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                  BasicConv2d(in_channels, pool_proj, kernel_size=1)),
        ))


class _TransformInput(nn.Module):
    """torchvision GoogLeNet's ``transform_input``: from ImageNet normalisation to [-1, 1] scaling,
    for its pretrained weights."""

    scale = np.array([0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5])
    shift = np.array([(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5])

    def forward(self, x):
        dtype = x.dtype
        return x * self.scale.astype(dtype)[:, None, None] + self.shift.astype(dtype)[:, None, None]

    def backward(self, grad_output, need_input_grad=True):
        return grad_output * self.scale.astype(grad_output.dtype)[:, None, None] if need_input_grad else None

    def output_shape(self, input_shape):
        return tuple(input_shape)


class GoogLeNet(nn.Sequential):
    """GoogLeNet (Inception v1) as torchvision's ``googlenet`` without the auxiliary classifiers:
    6,624,904 parameters for 1000 classes. Loading torchvision's checkpoint drops its ``aux1.*``
    and ``aux2.*`` keys; use ``transform_input=True`` with its pretrained weights, as torchvision."""

    def __init__(self, num_classes=1000, transform_input=False, dropout=0.2, init_weights=True):
        super().__init__(OrderedDict(
            transform=_TransformInput() if transform_input else None,
            conv1=BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3),
            maxpool1=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            conv2=BasicConv2d(64, 64, kernel_size=1),
            conv3=BasicConv2d(64, 192, kernel_size=3, padding=1),
            maxpool2=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            inception3a=Inception(192, 64, 96, 128, 16, 32, 32),
            inception3b=Inception(256, 128, 128, 192, 32, 96, 64),
            maxpool3=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            inception4a=Inception(480, 192, 96, 208, 16, 48, 64),
            inception4b=Inception(512, 160, 112, 224, 24, 64, 64),
            inception4c=Inception(512, 128, 128, 256, 24, 64, 64),
            inception4d=Inception(512, 112, 144, 288, 32, 64, 64),
            inception4e=Inception(528, 256, 160, 320, 32, 128, 128),
            maxpool4=nn.MaxPool2d(2, stride=2, ceil_mode=True),
            inception5a=Inception(832, 256, 160, 320, 32, 128, 128),
            inception5b=Inception(832, 384, 192, 384, 48, 128, 128),
            avgpool=nn.AdaptiveAvgPool2d((1, 1)),
            flatten=nn.Flatten(),
            dropout=nn.Dropout(p=dropout),
            fc=nn.Linear(1024, num_classes),
        ))
        self.transform_input = transform_input
        if init_weights:  # torchvision's initialisation
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)


def googlenet(num_classes=1000, weights=None, **kwargs):
    """GoogLeNet without auxiliary classifiers (see :class:`GoogLeNet`)."""
    model = GoogLeNet(num_classes, **kwargs)
    return model if weights is None else load_weights(model, weights, ignore_prefixes=("aux1.", "aux2."))


def num_parameters(model):
    """The number of parameters (buffers such as BatchNorm's running statistics not counted)."""
    return sum(math.prod(p.shape) for p in model.parameters())

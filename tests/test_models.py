"""convforge.models against torchvision's architectures: parameter counts (torchvision's published
numbers), state-dict keys and shapes against the same networks written in torch.nn below (as
torchvision writes them; torchvision itself is not a dependency), and the same logits after
loading a torch state dict, through torch.save files and .npz. Inputs are small (32x32, 64x64)
to keep this fast; one training step of the small ResNet is checked against torch autograd."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn as tnn

import convforge.nn as nn
from convforge import models, summary
from helpers import random

torch.set_num_threads(1)

# torchvision's documented parameter counts (the model builders' docs and weights metadata)
PARAMS = {"alexnet": 61_100_840, "vgg16": 138_357_544, "resnet18": 11_689_512, "resnet34": 21_797_672,
          "resnet50": 25_557_032, "googlenet": 6_624_904}


# ------------------------------------------------------------------------------------------------
# The torchvision networks, written with torch.nn


class TVBasicBlock(tnn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU(inplace=True)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TVBottleneck(tnn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.relu = tnn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TVResNet(tnn.Module):
    def __init__(self, block, layers, num_classes=1000, in_channels=3, widths=(64, 128, 256, 512),
                 stem_kernel_size=7, stem_stride=2, stem_pool=True):
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = tnn.Conv2d(in_channels, widths[0], stem_kernel_size, stem_stride, stem_kernel_size // 2,
                                bias=False)
        self.bn1 = tnn.BatchNorm2d(widths[0])
        self.relu = tnn.ReLU(inplace=True)
        self.maxpool = tnn.MaxPool2d(3, 2, 1) if stem_pool else tnn.Identity()
        self.stages = []
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            setattr(self, f"layer{i + 1}", self._make_layer(block, planes, blocks, 1 if i == 0 else 2))
            self.stages.append(f"layer{i + 1}")
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        self.fc = tnn.Linear(widths[-1] * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = tnn.Sequential(tnn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                        tnn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return tnn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TVBasicConv2d(tnn.Module):
    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = tnn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = tnn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class TVInception(tnn.Module):
    def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = TVBasicConv2d(cin, ch1x1, kernel_size=1)
        self.branch2 = tnn.Sequential(TVBasicConv2d(cin, ch3x3red, kernel_size=1),
                                      TVBasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = tnn.Sequential(TVBasicConv2d(cin, ch5x5red, kernel_size=1),
                                      TVBasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = tnn.Sequential(tnn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                      TVBasicConv2d(cin, pool_proj, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class TVGoogLeNet(tnn.Module):
    def __init__(self, num_classes=1000, transform_input=False):
        super().__init__()
        self.transform_input = transform_input
        self.conv1 = TVBasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = tnn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = TVBasicConv2d(64, 64, kernel_size=1)
        self.conv3 = TVBasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = tnn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = TVInception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = TVInception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = tnn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = TVInception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = TVInception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = TVInception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = TVInception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = TVInception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = tnn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = TVInception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = TVInception(832, 384, 192, 384, 48, 128, 128)
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        self.dropout = tnn.Dropout(p=0.2)
        self.fc = tnn.Linear(1024, num_classes)

    def forward(self, x):
        if self.transform_input:
            x = torch.cat([x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5,
                           x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5,
                           x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5], 1)
        for name, module in self.named_children():
            if name == "fc":
                x = torch.flatten(x, 1)
            x = module(x)
        return x


class TVAlexNetOrVGG(tnn.Module):
    def __init__(self, features, pool, classifier):
        super().__init__()
        self.features, self.avgpool, self.classifier = features, tnn.AdaptiveAvgPool2d(pool), classifier

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def tv_alexnet():
    r = dict(inplace=True)
    return TVAlexNetOrVGG(tnn.Sequential(
        tnn.Conv2d(3, 64, 11, 4, 2), tnn.ReLU(**r), tnn.MaxPool2d(3, 2), tnn.Conv2d(64, 192, 5, padding=2),
        tnn.ReLU(**r), tnn.MaxPool2d(3, 2), tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(**r),
        tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(**r), tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(**r),
        tnn.MaxPool2d(3, 2)), (6, 6), tnn.Sequential(
        tnn.Dropout(), tnn.Linear(9216, 4096), tnn.ReLU(**r), tnn.Dropout(), tnn.Linear(4096, 4096),
        tnn.ReLU(**r), tnn.Linear(4096, 1000)))


def tv_vgg16():
    layers, c = [], 3
    for v in models.VGG16_CONFIG:
        layers += [tnn.MaxPool2d(2, 2)] if v == "M" else [tnn.Conv2d(c, v, 3, padding=1), tnn.ReLU(True)]
        c = c if v == "M" else v
    return TVAlexNetOrVGG(tnn.Sequential(*layers), (7, 7), tnn.Sequential(
        tnn.Linear(25088, 4096), tnn.ReLU(True), tnn.Dropout(), tnn.Linear(4096, 4096), tnn.ReLU(True),
        tnn.Dropout(), tnn.Linear(4096, 1000)))


TWINS = {
    "alexnet": tv_alexnet,
    "vgg16": tv_vgg16,
    "resnet18": lambda: TVResNet(TVBasicBlock, [2, 2, 2, 2]),
    "resnet34": lambda: TVResNet(TVBasicBlock, [3, 4, 6, 3]),
    "resnet50": lambda: TVResNet(TVBottleneck, [3, 4, 6, 3]),
    "googlenet": TVGoogLeNet,
}

# keys torchvision's checkpoints hold (from torchvision's model files), spot-checked by name
TORCHVISION_KEYS = {
    "alexnet": ["features.0.weight", "features.10.bias", "classifier.1.weight", "classifier.6.bias"],
    "vgg16": ["features.0.weight", "features.28.bias", "classifier.0.weight", "classifier.6.bias"],
    "resnet18": ["conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                 "layer2.0.downsample.1.num_batches_tracked", "layer4.1.bn2.running_var", "fc.weight"],
    "resnet34": ["layer3.5.conv2.weight", "layer4.0.downsample.1.weight", "fc.bias"],
    "resnet50": ["layer1.0.downsample.0.weight", "layer1.0.conv3.weight", "layer4.2.bn3.bias", "fc.weight"],
    "googlenet": ["conv1.conv.weight", "conv1.bn.running_var", "inception3a.branch1.conv.weight",
                  "inception3a.branch2.1.bn.weight", "inception4e.branch4.1.conv.weight",
                  "inception5b.branch3.1.bn.num_batches_tracked", "fc.weight"],
}


def randomize_state(twin, seed):
    """Non-trivial BatchNorm statistics and affine parameters (fresh ones are 0/1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in twin.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) - 0.5)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.num_batches_tracked.fill_(7)
    return twin


# ------------------------------------------------------------------------------------------------
# Parameter counts, keys and shapes


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_counts_and_state_dict_keys(name):
    nn.manual_seed(0)
    model = getattr(models, name)()
    twin = TWINS[name]()
    assert models.num_parameters(model) == PARAMS[name]
    assert sum(p.numel() for p in twin.parameters()) == PARAMS[name]
    ours, theirs = model.state_dict(), twin.state_dict()
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        assert ours[key].shape == tuple(value.shape), key
        assert ours[key].dtype == (np.int64 if value.dtype == torch.int64 else np.float32), key
    assert set(TORCHVISION_KEYS[name]) <= set(ours)
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in twin.named_parameters()]
    size = 64 if name == "alexnet" else 32
    shapes = summary(model, (3, size, size), print_summary=False)
    assert shapes.total_params == PARAMS[name] and shapes.output_shape == (1, 1000)


def test_summary_at_224_matches_torchvision_shapes():
    nn.manual_seed(0)
    for name, final in [("resnet50", (1, 2048, 7, 7)), ("googlenet", (1, 1024, 7, 7)), ("alexnet", (1, 256, 6, 6))]:
        model = getattr(models, name)()
        assert summary(model, (3, 224, 224), print_summary=False).output_shape == (1, 1000)
        body = model[:list(model._modules).index("avgpool")]  # everything before the pooling
        assert body.output_shape((1, 3, 224, 224)) == final, name


# ------------------------------------------------------------------------------------------------
# Loading torch state dicts: the same logits


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "googlenet", "alexnet", "vgg16"])
def test_torch_state_dict_gives_the_same_logits(name, tmp_path):
    torch.manual_seed(1)
    twin = randomize_state(TWINS[name](), 2).eval()
    path = tmp_path / f"{name}.pth"
    state = twin.state_dict()
    if name == "googlenet":  # torchvision's file also holds the auxiliary classifiers
        state = OrderedDict(state, **{"aux1.fc1.weight": torch.zeros(3), "aux2.conv.conv.weight": torch.zeros(2)})
    torch.save(state, path)
    model = getattr(models, name)(weights=path).eval()
    size = 64 if name == "alexnet" else 32
    x = random((2, 3, size, size), np.float32, "logits", name)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    out = model(x)
    scale = np.abs(expected).max()
    assert out.shape == expected.shape == (2, 1000)
    assert np.allclose(out, expected, rtol=1e-3, atol=1e-3 * scale), np.abs(out - expected).max() / scale
    assert not np.allclose(out[0], out[1])  # the logits depend on the input


def test_npz_weights_and_transfer_learning(tmp_path):
    torch.manual_seed(3)
    twin = randomize_state(TWINS["resnet18"](), 4).eval()
    # as in torchvision's older checkpoints, without BatchNorm's num_batches_tracked
    nn.save({k: v.numpy() for k, v in twin.state_dict().items() if "num_batches" not in k}, tmp_path / "r18.npz")
    model = models.resnet18(weights=tmp_path / "r18.npz").eval()
    x = random((1, 3, 32, 32), np.float32, "npz")
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    assert np.allclose(model(x), expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
    # transfer learning: the pretrained body, a new head
    model.fc = nn.Linear(512, 10)
    model.train()
    out = model(random((4, 3, 32, 32), np.float32, "tl"))
    assert out.shape == (4, 10)
    model.backward(np.ones_like(out), need_input_grad=False)
    assert model.fc.weight.grad.shape == (10, 512) and model.conv1.weight.grad is not None
    with pytest.raises(ValueError, match="fc.weight: expected shape"):
        models.resnet18(num_classes=10, weights=tmp_path / "r18.npz")


def test_googlenet_transform_input():
    torch.manual_seed(5)
    twin = randomize_state(TVGoogLeNet(transform_input=True), 6).eval()
    model = models.googlenet(transform_input=True, weights=twin.state_dict()).eval()
    x = random((1, 3, 32, 32), np.float32, "transform")
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    assert np.allclose(model(x), expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


# ------------------------------------------------------------------------------------------------
# Training: the small ResNet against torch autograd


def test_resnet_small_training_steps_match_torch():
    """Two SGD steps in float64, training mode: gradients, parameters and BatchNorm statistics."""
    nn.manual_seed(0)
    model = models.resnet_small().double()
    twin = TVResNet(TVBasicBlock, [1, 1, 1], 10, in_channels=1, widths=(16, 32, 64), stem_kernel_size=3,
                    stem_stride=2, stem_pool=True).double()
    assert list(model.state_dict()) == list(twin.state_dict())
    assert models.num_parameters(model) == sum(p.numel() for p in twin.parameters())
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    from convforge import optim
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch_optimizer = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    for step in range(2):
        x = random((6, 1, 32, 32), np.float64, "rs", step)
        y = np.arange(6) % 10
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        model.backward(criterion.backward(), need_input_grad=False)
        expected = tnn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
        torch_optimizer.zero_grad()
        expected.backward()
        assert abs(float(loss) - expected.item()) < 1e-10
        for name, p in twin.named_parameters():
            got = dict(model.named_parameters())[name].grad
            assert np.allclose(got, p.grad.numpy(), rtol=1e-8, atol=1e-10), (step, name)
        optimizer.step()
        torch_optimizer.step()
    for key, value in twin.state_dict().items():
        assert np.allclose(model.state_dict()[key], value.numpy(), rtol=1e-8, atol=1e-10), key
    model.eval(), twin.eval()
    x = random((3, 1, 32, 32), np.float64, "rs-eval")
    assert np.allclose(model(x), twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-8, atol=1e-10)

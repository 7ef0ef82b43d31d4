"""Real trainers on convforge, through the switch and through replace_modules: Keras 3 on its
torch backend (examples/keras_cnn.py, in a subprocess), PyTorch Lightning's Trainer.fit, and a
ResNet-18 written in plain torch. Each trains from the same weights on torch's own kernels too;
the losses must agree within a tolerance derived from the sums the training performs."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convforge
import convforge.torch as ct
from bench.train import torch_resnet18
from helpers import tolerance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def clean():
    assert not ct.is_enabled()
    for counter in (ct.dispatched, ct.fallbacks):
        counter.clear()
    yield
    ct.disable()


def depth_bound(model, x):
    """An upper bound on the longest chain of sums in one training step (forward and backward of
    every layer that reduces), as in test_torch_backend: differences of summation order grow
    like sqrt(depth)."""
    depth, batch_area = 0, x.shape[0] * x.shape[2] * x.shape[3]
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            depth += m.weight[0].numel() + m.out_channels * m.kernel_size[0] * m.kernel_size[1] + batch_area
        elif isinstance(m, nn.Linear):
            depth += m.in_features + m.out_features + x.shape[0]
        elif isinstance(m, (nn.BatchNorm2d, nn.AdaptiveAvgPool2d)):
            depth += batch_area
    return depth


def assert_same_losses(native, other, depth, what):
    allowed = tolerance(max(native), depth * len(native), np.float32)  # differences compound over steps
    print(f"\n{what}: native {' '.join(f'{v:.7f}' for v in native)}")
    print(f"{what}: convforge {' '.join(f'{v:.7f}' for v in other)} (allowed {allowed:.2g})")
    assert len(native) == len(other)
    assert np.all(np.abs(np.subtract(other, native)) <= allowed), (native, other, allowed)


# ----------------------------------------------------------------------------------------------
# Keras 3 (torch backend)


def test_keras_fashion_mnist_cnn_fit(tmp_path):
    """The Keras tutorials' Fashion-MNIST CNN, model.fit for 2 epochs inside the switch, from the
    same weights as a native run. A subprocess: KERAS_BACKEND must be set before keras is
    imported, and the choice is global to the process. The test extra installs Keras: without
    it the script fails, and so does the test."""
    env = dict(os.environ, KERAS_BACKEND="torch", KERAS_HOME=str(tmp_path))  # its config file goes there
    package_dir = os.path.dirname(os.path.dirname(convforge.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_dir, env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "keras_cnn.py"), "--json",
                             "--epochs", "2", "--samples", "256", "--batch-size", "32"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    r = json.loads(result.stdout.strip().splitlines()[-1])
    # Both Conv2D layers and both MaxPooling2D layers ran on convforge at every step (fit, plus
    # one profiled step): the counters and the profiler agree.
    steps = r["steps"]
    assert steps == 2 * 8 + 1
    assert r["dispatched"]["conv2d"] == 2 * steps, r["dispatched"]
    assert r["dispatched"]["max_pool2d"] >= 2 * steps, r["dispatched"]
    assert set(r["fallbacks"]) <= {"conv2d: device meta"}, r["fallbacks"]  # Keras builds on meta tensors
    assert {"convforge::conv2d", "convforge::conv2d_backward", "convforge::max_pool2d_with_indices",
            "convforge::max_pool2d_backward"} <= set(r["convforge_ops"]), r["convforge_ops"]
    assert "aten::convolution_backward" in r["native_ops"]  # the profiler would have shown torch's
    assert not any(op.startswith("aten::") for op in r["convforge_ops"]), r["convforge_ops"]
    # Per-epoch mean losses. Depth of one step: conv1 (9, -, 32*26*26 per weight), conv2
    # (288, 64*9, 32*11*11), Dense (1600, 10, 32); 8 steps per epoch, compounding over 2 epochs.
    depth = (9 + 32 * 26 * 26) + (288 + 64 * 9 + 32 * 11 * 11) + (1600 + 10 + 32)
    assert_same_losses(r["native_losses"], r["convforge_losses"], depth * 8, "keras")
    assert r["native_losses"][1] < r["native_losses"][0]


# ----------------------------------------------------------------------------------------------
# PyTorch Lightning


def lightning_fit(tmp_path, how):
    import pytorch_lightning as pl  # the test extra installs it: missing is a failure, not a skip

    class LitNet(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2),
                nn.Flatten(), nn.Linear(16 * 5 * 5, 32), nn.ReLU(), nn.Linear(32, 10))
            self.losses = []

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.losses.append(loss.item())
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    torch.manual_seed(0)
    module = LitNet()
    g = torch.Generator().manual_seed(1)
    data = torch.utils.data.TensorDataset(torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g))
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        if how == "replace_modules":
            ct.replace_modules(module)
        if how == "switch":
            with ct.enabled():
                trainer.fit(module, loader)
        else:
            trainer.fit(module, loader)
    return module, data.tensors[0][:16], module.losses


def test_lightning_trainer_fit(tmp_path):
    native = lightning_fit(tmp_path, "native")[2]
    module, x, swapped = lightning_fit(tmp_path, "replace_modules")
    assert all(m.convforge_fallback is None for m in module.modules() if isinstance(m, ct._Backend))
    assert sum(isinstance(m, ct._Backend) for m in module.modules()) == 6
    assert not ct.dispatched and not ct.fallbacks
    switched = lightning_fit(tmp_path, "switch")[2]
    steps = 2 * 4
    assert ct.dispatched == {"conv2d": 2 * steps, "max_pool2d": steps, "avg_pool2d": steps, "linear": 2 * steps}
    assert not ct.fallbacks
    assert len(native) == steps
    depth = depth_bound(module, x)
    assert_same_losses(native, swapped, depth, "lightning, replace_modules")
    assert_same_losses(native, switched, depth, "lightning, switch")
    assert not list(tmp_path.iterdir())  # no logs, no checkpoints


# ----------------------------------------------------------------------------------------------
# ResNet-18 in plain torch


def resnet_train(how, steps=3):
    torch.manual_seed(0)
    model = torch_resnet18(torch, widths=(16, 32, 64, 128), classes=10)  # a quarter of the width: milliseconds a step
    g = torch.Generator().manual_seed(2)
    x, labels = torch.rand(4, 3, 64, 64, generator=g), torch.randint(0, 10, (4,), generator=g)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    if how == "replace_modules":
        ct.replace_modules(model)
    losses = []
    for _ in range(steps):
        with ct.enabled() if how == "switch" else torch.enable_grad():
            loss = F.cross_entropy(model(x), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        losses.append(loss.item())
    return model, x, losses


def test_resnet18_trains_identically():
    _, x, native = resnet_train("native")
    model, _, swapped = resnet_train("replace_modules")
    assert sum(isinstance(m, ct.Conv2d) for m in model.modules()) == 20
    assert all(m.convforge_fallback is None for m in model.modules() if isinstance(m, ct._Backend))
    _, _, switched = resnet_train("switch")
    steps = len(native)
    # 20 convolutions (stem, 16 in the blocks, 3 projections), the max pool, the global average
    # pool (adaptive, on convforge's avg_pool2d) and the fc layer, at every step; BatchNorm,
    # ReLU and the residual additions stay on torch and are not fallbacks.
    assert ct.dispatched == {"conv2d": 20 * steps, "max_pool2d": steps, "adaptive_avg_pool2d": steps, "linear": steps}
    assert not ct.fallbacks
    depth = depth_bound(model, x)
    assert_same_losses(native, swapped, depth, "resnet18, replace_modules")
    assert_same_losses(native, switched, depth, "resnet18, switch")
    assert native[-1] < native[0]

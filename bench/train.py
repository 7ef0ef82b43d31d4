"""The train suite.

- lenet_digits: one epoch of LeNet-5 on scikit-learn's digits (upsampled to 32x32 as
  `convforge train` does), built from convforge.nn layers and trained with convforge.optim,
  against the same model, loss and optimiser in PyTorch (same initial weights, batches, batch
  size and threads).
- resnet18_step: one SGD step of a ResNet-18 written in plain torch, on torch's own kernels and
  inside `convforge.torch.enabled()` (convolutions, pooling and the fc layer on convforge's), in
  torch's channels_last memory format (its fastest on the CPU) or NCHW.

Before timing, the logits on the first batch are checked against the same model evaluated in
float64 by torch."""

import numpy as np

from .check import Expected, compare
from .ops import Impl, Problem

LR, MOMENTUM = 0.05, 0.9


def build(nn):
    """The model, written once for torch.nn and convforge.nn (the same names and arguments)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),  # 32x32 -> 28x28 -> 14x14
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),  # -> 10x10 -> 5x5
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def torch_resnet18(torch, widths=(64, 128, 256, 512), classes=1000):
    """torchvision's resnet18 layout in plain torch: a 7x7 stride-2 stem, a max pool, 4 stages of
    2 basic blocks (BatchNorm, residual additions, 1x1 projections), a global average pool and
    the fc layer. The default widths are ResNet-18's."""
    nn, F = torch.nn, torch.nn.functional

    class BasicBlock(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.downsample = None
            if stride != 1 or c_in != c_out:
                self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                                nn.BatchNorm2d(c_out))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = F.relu(self.bn1(self.conv1(x)))
            return F.relu(self.bn2(self.conv2(out)) + identity)

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            layers, c_in = [], widths[0]
            for i, c in enumerate(widths):
                layers.append(nn.Sequential(BasicBlock(c_in, c, 1 if i == 0 else 2), BasicBlock(c, c, 1)))
                c_in = c
            self.layers = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(widths[-1], classes)

        def forward(self, x):
            x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
            return self.fc(torch.flatten(self.avgpool(self.layers(x)), 1))

    return ResNet18()


def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = np.kron(data.images / 16.0, np.ones((4, 4)))[:, None]  # (1797, 1, 32, 32), nearest neighbour
    x = ((x - x.mean()) / x.std()).astype(np.float32)
    return x, data.target.astype(np.int64)


def batches(x, y, batch_size, rng):
    order = rng.permutation(len(x))
    return [(np.ascontiguousarray(x[order[i:i + batch_size]]), y[order[i:i + batch_size]])
            for i in range(0, len(x), batch_size)]


def _torch_trainer(torch, model, data):
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    tensors = [(torch.from_numpy(xb), torch.from_numpy(yb)) for xb, yb in data]

    def epoch():
        model.train()
        for xb, yb in tensors:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        return loss

    return epoch


def _convforge_trainer(cnn, optim, model, data):
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = cnn.CrossEntropyLoss()

    def epoch():
        model.train()
        for xb, yb in data:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            model.backward(loss_fn.backward(), need_input_grad=False)  # as torch: x needs no grad
            opt.step()
        return loss

    return epoch


def _convforge_nn():
    try:
        from convforge import nn as cnn, optim
    except ImportError:
        return None, None
    return cnn, optim


def problem(case, pass_, peers, rng):
    if case.params["model"] == "resnet18":
        return resnet18_problem(case, peers, rng)
    import torch

    p = case.params
    x, y = digits()
    x, y = x[:p["limit"]], y[:p["limit"]]
    data = batches(x, y, p["batch_size"], rng)
    torch.manual_seed(0)
    reference_model = build(torch.nn)
    state = {k: v.detach().numpy().copy() for k, v in reference_model.state_dict().items()}
    with torch.no_grad():
        logits64 = build(torch.nn).double()
        logits64.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in state.items()})
        xb0 = data[0][0]
        expected_logits = logits64(torch.from_numpy(xb0.astype(np.float64))).numpy()
        magnitude = _abs_forward(logits64, torch, xb0)
    depth = 25 + 6 * 25 + 16 * 25 + 120 + 84  # the terms summed along a path through the layers

    impls, notes = [], []
    cnn, optim = _convforge_nn()
    cf_model = None
    if cnn is None:
        notes.append("convforge.nn is not available: torch only")
    else:
        cf_model = build(cnn)
        cf_model.load_state_dict(state)
        impls.append(Impl("convforge", "", _convforge_trainer(cnn, optim, cf_model, data)))
    if "torch" in peers:
        t_model = build(torch.nn)
        t_model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        impls.append(Impl("torch", "", _torch_trainer(torch, t_model, data)))
    models = {"convforge": cf_model, "torch": t_model if "torch" in peers else None}

    def verify(label, impl):
        """The first batch's logits (before any step) against the float64 model."""
        model = models[impl.who]
        if impl.who == "torch":
            with torch.no_grad():
                model.eval()
                got = model(torch.from_numpy(xb0)).numpy()
        else:
            model.eval()
            got = np.asarray(model(xb0))
        compare(label, [got], [Expected("logits (first batch)", expected_logits, magnitude, depth)])

    return Problem(impls, [], flops=0.0, bytes=0.0, items=len(x), oracle="torch float64 (same weights)",
                   verify=verify, notes=notes)


def _abs_forward(model64, torch, xb):
    """The model with |weights| on |x| (ReLU and max pooling are monotone): a bound on the sum
    of |terms| behind each logit, which scales the tolerance."""
    import copy

    m = copy.deepcopy(model64)
    with torch.no_grad():
        for prm in m.parameters():
            prm.abs_()
        return m(torch.from_numpy(np.abs(xb).astype(np.float64))).numpy()


def resnet18_problem(case, peers, rng):
    """One SGD step of torch_resnet18 on a random batch, native and with convforge's switch on."""
    import contextlib
    import copy

    import torch

    import convforge.torch as ct

    p = case.params
    memory_format = torch.channels_last if p["memory_format"] == "channels_last" else torch.contiguous_format
    size, batch = p["size"], p["batch_size"]
    x = torch.from_numpy(rng.uniform(-1, 1, (batch, 3, size, size)).astype(np.float32))
    x = x.contiguous(memory_format=memory_format)
    labels = torch.from_numpy(rng.integers(0, 1000, batch))
    torch.manual_seed(0)
    base = torch_resnet18(torch).to(memory_format=memory_format)
    models = {who: copy.deepcopy(base) for who in ("convforge", "torch")}

    def trainer(model, switch):
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

        def step():
            model.train()
            with ct.enabled() if switch else torch.enable_grad():
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x), labels)
                loss.backward()
                opt.step()
            return loss

        return step

    impls = [Impl("convforge", "", trainer(models["convforge"], True))]
    if "torch" in peers:
        impls.append(Impl("torch", "", trainer(models["torch"], False)))
    with torch.no_grad():
        model64 = copy.deepcopy(base).double().eval()
        xb0 = x[:2]
        expected_logits = model64(xb0.double()).numpy()
        magnitude = _abs_forward(model64, torch, xb0.numpy())
    depth = sum(m.weight[0].numel() for m in base.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))

    def verify(label, impl):
        """The first two images' logits (eval mode, before any step) against the float64 model."""
        model = models[impl.who]
        model.eval()
        with torch.no_grad(), ct.enabled() if impl.who == "convforge" else contextlib.nullcontext():
            got = model(xb0).numpy()
        compare(label, [got], [Expected("logits (first batch)", expected_logits, magnitude, depth)])

    notes = [f"{p['memory_format']} tensors; the switch runs conv2d, pooling and linear on convforge, "
             "BatchNorm, ReLU and the additions on torch"]
    return Problem(impls, [], flops=0.0, bytes=0.0, items=batch, oracle="torch float64 (same weights)",
                   verify=verify, notes=notes)

"""The train suite: one epoch of LeNet-5 on scikit-learn's digits (upsampled to 32x32 as
`convforge train` does), built
from convforge.nn layers and trained with convforge.optim, against the same model, loss and
optimiser in PyTorch (same initial weights, batches, batch size and threads).

Before timing, both frameworks' logits on the first batch are checked against the same model
evaluated in float64 by torch."""

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

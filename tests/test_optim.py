"""convforge.optim against torch.optim: the same initial weights and gradients give the same
parameters after each step (float64 on both sides, so only summation order differs)."""

import numpy as np
import pytest
import torch

import convforge.nn as nn
from convforge import optim
from helpers import random
from test_nn import small_cnn, torch_small_cnn

torch.set_num_threads(1)

SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1),
    dict(lr=0.05, momentum=0.9, maximize=True),
]
ADAM_CONFIGS = [
    dict(),
    dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.01, maximize=True, weight_decay=0.1),
]


def run_steps(make, config, steps=3):
    """Train small_cnn for a few steps in convforge and torch side by side; compare each step."""
    nn.manual_seed(7)
    model = small_cnn().double()
    twin = torch_small_cnn(model)
    ours = make[0](model.parameters(), **config)
    theirs = make[1](twin.parameters(), **config)
    criterion = nn.CrossEntropyLoss()
    for step in range(steps):
        x = random((4, 2, 12, 10), np.float64, "optim-x", step)
        target = np.array([0, 2, 1, step % 3])
        ours.zero_grad()
        criterion(model(x), target)
        model.backward(criterion.backward(), need_input_grad=False)
        ours.step()
        theirs.zero_grad()
        torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(target)).backward()
        theirs.step()
        expected = twin.state_dict()
        for name, value in model.state_dict().items():
            np.testing.assert_allclose(value, expected[name].numpy(), rtol=1e-9, atol=1e-12,
                                       err_msg=f"step {step + 1}: {name}")


@pytest.mark.parametrize("config", SGD_CONFIGS, ids=str)
def test_sgd_matches_torch(config):
    run_steps((optim.SGD, torch.optim.SGD), config)


@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=str)
def test_adam_matches_torch(config):
    run_steps((optim.Adam, torch.optim.Adam), config)


def test_float32_step_stays_float32():
    p = nn.Parameter(np.ones(5, np.float32))
    for opt in (optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1), optim.Adam([p], weight_decay=0.1)):
        p.grad = np.full(5, 0.5, np.float32)
        opt.step()
        assert p.data.dtype == np.float32


def test_param_groups_zero_grad_and_skipping():
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad, b.grad = np.ones(3), None
    opt.step()
    assert np.allclose(a.data, 0.9) and np.allclose(b.data, 1.0)  # no gradient: not updated
    opt.zero_grad()
    assert a.grad is None
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([a], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        optim.Adam([a], lr=-1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [a]}, {"params": [a]}], lr=0.1)


def test_cosine_schedule_matches_torch():
    p = nn.Parameter(np.ones(1))
    ours = optim.SGD([p], lr=0.05)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(ours, T_max=6, eta_min=0.001)
    tp = torch.nn.Parameter(torch.ones(1))
    theirs = torch.optim.SGD([tp], lr=0.05)
    tscheduler = torch.optim.lr_scheduler.CosineAnnealingLR(theirs, T_max=6, eta_min=0.001)
    for _ in range(8):
        assert np.isclose(scheduler.get_last_lr()[0], tscheduler.get_last_lr()[0], rtol=1e-12)
        theirs.step()
        scheduler.step()
        tscheduler.step()

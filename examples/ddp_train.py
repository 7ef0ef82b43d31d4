"""Data-parallel training of a small CNN on convforge kernels with PyTorch's DistributedDataParallel.

PyTorch's distributed engine moves the gradients (here over gloo, CPU); convforge runs the
convolutions, pooling and linear layers in every process. The only convforge line is
``convforge.torch.replace_modules(model)``.

On this machine, 2 processes (spawned, talking over localhost)::

    python examples/ddp_train.py
    python examples/ddp_train.py --steps 3 --dtype float64 --verify   # + compare with 1 process

``--verify`` trains the same model in one process on the concatenated batches and checks that the
parameters match: DDP averages the gradients of equal shards, which is the gradient of the mean
loss over the whole batch.

Across machines, start one copy per process with torchrun, which sets RANK, WORLD_SIZE,
MASTER_ADDR and MASTER_PORT (the script then uses them instead of spawning)::

    torchrun --nnodes 2 --nproc-per-node 2 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        examples/ddp_train.py
"""

import argparse
import math
import os
import socket
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import convforge
import convforge.torch


def make_model(dtype):
    """A small CNN: stride-2 and padded convs, max and average pooling, two linear layers."""
    torch.manual_seed(0)  # the same initial weights in every process
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),          # 16 -> 8
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),                # 8 -> 4
        nn.AvgPool2d(2), nn.Flatten(),                                      # 4 -> 2
        nn.Linear(16 * 2 * 2, 32), nn.ReLU(), nn.Linear(32, 10),
    ).to(dtype)
    return convforge.torch.replace_modules(model)


def batch(step, size, dtype):
    """The global batch of a step (synthetic 16x16 images with a learnable label)."""
    g = torch.Generator().manual_seed(1000 + step)
    images = torch.randn(size, 1, 16, 16, generator=g, dtype=dtype)
    labels = (images[:, 0, :8].sum((1, 2)) > 0).long() + 2 * (images[:, 0, :, :8].sum((1, 2)) > 0).long()
    return images, labels


def train(model, steps, batch_size, dtype, rank=0, world_size=1):
    """SGD with momentum; each process takes its contiguous shard of every global batch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    shard = batch_size // world_size
    losses = []
    for step in range(steps):
        images, labels = batch(step, batch_size, dtype)
        images, labels = images[rank * shard:(rank + 1) * shard], labels[rank * shard:(rank + 1) * shard]
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses)


def worker(rank, world_size, args, result_path):
    torch.set_num_threads(1)  # one core per process
    convforge.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    model = DistributedDataParallel(make_model(args.dtype))
    losses = train(model, args.steps, args.batch_size, args.dtype, rank, world_size)
    dist.all_reduce(losses)  # mean over the shards = the loss of the whole batch
    losses /= world_size
    if rank == 0:
        print("step losses:", " ".join(f"{v:.6f}" for v in losses.tolist()))
        if result_path:
            torch.save({"losses": losses, "state": model.module.state_dict()}, result_path)
    dist.destroy_process_group()
    # End the process here. torch keeps the frames that created the first optimizer alive (and
    # with them the model, whose reducer holds the process group) until the interpreter shuts
    # down; the group's gloo threads torn down that late can abort the exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def verify(result_path, args):
    """Compare the DDP result with one process training on the whole batches."""
    result = torch.load(result_path)
    model = make_model(args.dtype)
    losses = train(model, args.steps, args.batch_size, args.dtype)
    print("1-process losses:", " ".join(f"{v:.6f}" for v in losses.tolist()))
    eps = torch.finfo(args.dtype).eps
    worst = 0.0
    for name, value in model.state_dict().items():
        ddp_value = result["state"][name]
        # relative to the parameter's scale; 2 shards only change the order of the gradient sums
        worst = max(worst, ((ddp_value - value).abs().max() / value.abs().max()).item())
    # The shards only change the order of the gradient sums: a sum of n terms moves by about
    # eps * sqrt(n) of its scale, and each step adds its own (the tests' helper rule, 8x margin).
    allowed = 8 * eps * math.sqrt(args.batch_size) * args.steps
    print(f"max parameter difference, DDP vs 1 process: {worst:.3g} of the parameters' scale "
          f"(allowed {allowed:.3g})")
    return worst <= allowed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-size", type=int, default=2, help="processes to spawn (without torchrun)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32, help="global batch, split over processes")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--verify", action="store_true", help="compare with 1-process training")
    args = parser.parse_args(argv)
    args.dtype = getattr(torch, args.dtype)

    if "RANK" in os.environ:  # started by torchrun: one process of many
        worker(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), args, None)
        return 0

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(free_port())
    with tempfile.TemporaryDirectory() as tmp:
        result_path = os.path.join(tmp, "result.pt")
        mp.spawn(worker, args=(args.world_size, args, result_path), nprocs=args.world_size)
        if args.verify and not verify(result_path, args):
            print("FAILED: DDP and 1-process parameters differ", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

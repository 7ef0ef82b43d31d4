"""The ``convforge`` command: ``convforge train`` (the main job), ``convforge summary`` and
``convforge info``. Also ``python -m convforge ...``."""

import argparse
import sys
import time

import numpy as np

PROG = "convforge"
MODELS = ("lenet", "vgg-small", "resnet-small")
IMAGENET_MODELS = ("alexnet", "vgg16", "resnet18", "resnet34", "resnet50", "googlenet")
AUGMENTATIONS = ("shift", "flip")
DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3}


class UsageError(Exception):
    """A user mistake (bad data directory, bad file): reported in one line, exit code 2."""


def _positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _augmentations(text):
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in AUGMENTATIONS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(AUGMENTATIONS)}, got {text!r}")
    return kinds


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, description="convforge: conv2d, pooling and GEMM kernels, "
                                     "and a CNN trainer built on them.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    train = sub.add_parser("train", help="train a CNN with convforge's kernels (default: LeNet-5 on digits)",
                           description="Train a CNN with convforge.nn and convforge's kernels, then print "
                           "train and test accuracy, time per epoch and samples per second.")
    train.add_argument("--data", default="digits", metavar="digits|mnist:DIR",
                       help="'digits' (scikit-learn's 8x8 digits, the default) or 'mnist:DIR', a directory "
                       "holding the four MNIST or Fashion-MNIST IDX files, raw or gzipped")
    train.add_argument("--model", default="lenet", choices=MODELS, help="the network (default: lenet)")
    train.add_argument("--epochs", type=_non_negative_int, default=5, help="passes over the training set, "
                       "with a cosine learning-rate schedule (default: 5; 0 only evaluates, e.g. with --load)")
    train.add_argument("--batch-size", type=_positive_int, default=32, help="mini-batch size (default: 32)")
    train.add_argument("--lr", type=_positive_float, default=None,
                       help="initial learning rate (default: 0.05 for sgd, 0.002 for adam)")
    train.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"),
                       help="sgd (momentum 0.9) or adam (default: sgd)")
    train.add_argument("--threads", type=_positive_int, default=None,
                       help="threads for the kernels (default: OMP_NUM_THREADS or all cores)")
    train.add_argument("--seed", type=int, default=0, help="seed for initialisation, shuffling and "
                       "dropout; the same seed gives the same numbers (default: 0)")
    train.add_argument("--save", metavar="FILE", help="write the trained state dict to FILE (.npz)")
    train.add_argument("--load", metavar="FILE", help="start from the state dict in FILE (.npz)")
    train.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                       help="use only the first N training and N test samples (quick runs, tests)")
    train.add_argument("--augment", type=_augmentations, nargs="?", const=AUGMENTATIONS, default=None,
                       metavar="shift,flip", help="data augmentation of the training batches, drawn from "
                       "--seed: random shifts by up to 1/8 of the image size (edges replicated) and/or "
                       "horizontal flips (default with no value: both; flips do not suit digits, "
                       "use '--augment shift' there)")
    train.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE",
                       help="hold out 10%% of the training set, stop when its loss has not improved for "
                       "PATIENCE epochs and keep the best epoch's weights")
    train.add_argument("--no-progress", action="store_true",
                       help="no progress bar (it is shown only on a terminal, with rich installed)")
    train.set_defaults(func=train_command)

    summary = sub.add_parser("summary", help="print a model's layers, output shapes and parameter counts")
    summary.add_argument("--model", default="lenet", choices=(*MODELS, *IMAGENET_MODELS),
                         help="a 32x32 model (1 channel, 10 classes) or an ImageNet one (3x224x224, "
                         "1000 classes, torchvision's layout)")
    summary.set_defaults(func=summary_command)

    info = sub.add_parser("info", help="print the build: ISA in use, threads, OpenMP, CUDA, versions")
    info.set_defaults(func=info_command)
    return parser


def main(argv=None):
    """Entry point of the ``convforge`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except UsageError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


# ------------------------------------------------------------------------------------------------
# convforge train


def _make_model(name, in_channels, num_classes):
    from . import models

    if name == "lenet":
        return models.lenet5(num_classes, in_channels)
    if name == "resnet-small":
        return models.resnet_small(num_classes, in_channels)
    return models.vgg_small(num_classes, in_channels)


def _augment(images, rng, kinds):
    """A randomly shifted (edges replicated) and/or horizontally flipped copy of a batch."""
    out = images.copy()
    n, _, h, w = images.shape
    if "shift" in kinds:
        limit = max(1, min(h, w) // 8)
        padded = np.pad(images, ((0, 0), (0, 0), (limit, limit), (limit, limit)), mode="edge")
        dy, dx = rng.integers(-limit, limit + 1, size=(2, n))
        for i in range(n):
            out[i] = padded[i, :, limit + dy[i]:limit + dy[i] + h, limit + dx[i]:limit + dx[i] + w]
    if "flip" in kinds:
        flip = rng.random(n) < 0.5
        out[flip] = out[flip][..., ::-1]
    return out


def _evaluate(model, criterion, images, labels, batch_size=256):
    """(mean loss, accuracy in %) in eval mode."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size])
        yb = labels[start:start + batch_size]
        loss_sum += float(criterion(logits, yb)) * len(yb)
        correct += int((logits.argmax(axis=1) == yb).sum())
    model.train()
    return loss_sum / len(images), 100.0 * correct / len(images)


def _accuracy(model, images, labels, batch_size=256):
    if len(images) == 0:
        return float("nan")
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size])
        correct += int((logits.argmax(axis=1) == labels[start:start + batch_size]).sum())
    model.train()
    return 100.0 * correct / len(images)


class _Progress:
    """A progress bar on a terminal (rich's when installed, else a plain one-line bar); without a
    terminal, or with --no-progress, only the per-epoch summary lines."""

    def __init__(self, enabled):
        self.bar = None
        self.plain = False
        if not (enabled and sys.stdout.isatty()):
            return
        try:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn)
        except ImportError:
            self.plain = True
            return
        self.bar = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]:.4f}"),
                            TextColumn("{task.fields[rate]:,.0f} samples/s"), TimeElapsedColumn())

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()

    def start_epoch(self, label, total):
        self.label, self.total = label, total
        if self.bar is not None:
            self.task = self.bar.add_task("", total=total, epoch=label, loss=float("nan"), rate=0.0)

    def update(self, done, loss, rate):
        if self.bar is not None:
            self.bar.update(self.task, completed=done, loss=loss, rate=rate)
        elif self.plain:
            filled = int(30 * done / max(self.total, 1))
            sys.stdout.write(f"\repoch {self.label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} "
                             f"loss {loss:.4f} {rate:,.0f} samples/s")
            sys.stdout.flush()

    def end_epoch(self):
        if self.bar is not None:  # the epoch's summary line replaces its bar
            self.bar.remove_task(self.task)
        elif self.plain:
            sys.stdout.write("\r\033[2K")

    def log(self, text):
        if self.bar is not None:
            self.bar.console.print(text, highlight=False)
        else:
            print(text, flush=True)


def train_command(args):
    import convforge
    from . import data as datasets
    from . import nn, optim

    if args.threads is not None:
        convforge.set_num_threads(args.threads)
    try:
        dataset = datasets.load(args.data)
    except (datasets.DataError, OSError) as error:
        raise UsageError(str(error)) from None
    if args.limit is not None:
        dataset = dataset.limit(args.limit)

    nn.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = _make_model(args.model, dataset.train_images.shape[1], dataset.num_classes)
    if args.load:
        try:
            model.load_state_dict(nn.load(args.load))
        except (ValueError, OSError) as error:
            raise UsageError(f"--load {args.load}: {error}") from None
    lr = DEFAULT_LR[args.optimizer] if args.lr is None else args.lr
    if args.optimizer == "sgd":
        optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        optimizer = optim.Adam(model.parameters(), lr=lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(args.epochs, 1))
    criterion = nn.CrossEntropyLoss()

    x, y = dataset.train_images, dataset.train_labels
    extras = ""
    if args.early_stopping is not None:  # a held-out split of the training set, drawn from --seed
        if len(x) < 2:
            raise UsageError("--early-stopping needs at least 2 training samples")
        order = np.random.default_rng([args.seed, 2]).permutation(len(x))
        n_val = max(1, len(x) // 10)
        x_val, y_val = x[order[:n_val]], y[order[:n_val]]
        x, y = x[order[n_val:]], y[order[n_val:]]
        extras += f", early stopping (patience {args.early_stopping}) on {n_val:,} held-out samples"
    if args.augment:
        augment_rng = np.random.default_rng([args.seed, 1])  # apart from shuffling: same order either way
        extras += f", augment {'+'.join(args.augment)}"
    n = len(x)
    info = convforge.info()
    print(f"{PROG} train: {args.model} on {dataset.name} ({n:,} train / {len(dataset.test_images):,} test, "
          f"{'x'.join(map(str, x.shape[1:]))}), {args.optimizer} lr={lr:g}, batch {args.batch_size}, "
          f"{args.epochs} epoch{'s' if args.epochs != 1 else ''}, {info['num_threads']} thread{'s' if info['num_threads'] != 1 else ''}, {info['isa']}, seed {args.seed}{extras}", flush=True)
    best = None  # (val loss, epoch, state) for early stopping

    epoch_times = []
    with _Progress(not args.no_progress) as progress:
        for epoch in range(1, args.epochs + 1):
            order = rng.permutation(n)
            progress.start_epoch(f"{epoch}/{args.epochs}", n)
            start = time.perf_counter()
            seen, loss_sum, correct = 0, 0.0, 0
            model.train()
            for first in range(0, n, args.batch_size):
                batch = order[first:first + args.batch_size]
                xb, yb = x[batch], y[batch]
                if args.augment:
                    xb = _augment(xb, augment_rng, args.augment)
                logits = model(xb)
                loss = criterion(logits, yb)
                optimizer.zero_grad()
                model.backward(criterion.backward(), need_input_grad=False)
                optimizer.step()
                seen += len(batch)
                loss_sum += float(loss) * len(batch)
                correct += int((logits.argmax(axis=1) == yb).sum())
                progress.update(seen, loss_sum / seen, seen / (time.perf_counter() - start))
            elapsed = time.perf_counter() - start
            epoch_times.append(elapsed)
            if not np.isfinite(loss_sum):
                raise UsageError(f"the loss diverged at epoch {epoch}; try a smaller --lr")
            scheduler.step()
            progress.end_epoch()
            test_acc = _accuracy(model, dataset.test_images, dataset.test_labels)
            val = ""
            if args.early_stopping is not None:
                val_loss, val_acc = _evaluate(model, criterion, x_val, y_val)
                val = f"  val loss {val_loss:.4f}  val {val_acc:.2f} %"
                if best is None or val_loss < best[0]:
                    best = (val_loss, epoch, {k: np.array(v) for k, v in model.state_dict().items()})
            progress.log(f"epoch {epoch}/{args.epochs}  loss {loss_sum / seen:.4f}  train {100.0 * correct / seen:.2f} %"
                         f"  test {test_acc:.2f} %{val}  {elapsed:.2f} s  {seen / elapsed:,.0f} samples/s")
            if best is not None and epoch - best[1] >= args.early_stopping:
                progress.log(f"early stopping: the held-out loss has not improved for {args.early_stopping} "
                             f"epoch{'s' if args.early_stopping != 1 else ''}")
                break
    if best is not None and best[1] != len(epoch_times):
        model.load_state_dict(best[2])
        print(f"restored the weights of epoch {best[1]} (held-out loss {best[0]:.4f})")

    train_acc = _accuracy(model, x, y)
    test_acc = _accuracy(model, dataset.test_images, dataset.test_labels)
    print(f"train accuracy: {train_acc:.2f} %   test accuracy: {test_acc:.2f} %")
    if epoch_times:
        total = sum(epoch_times)
        print(f"time per epoch: {total / len(epoch_times):.2f} s   training speed: "
              f"{n * len(epoch_times) / total:,.0f} samples/s   total training time: {total:.1f} s")
    if args.save:
        try:
            nn.save(model.state_dict(), args.save)
        except OSError as error:
            raise UsageError(f"--save {args.save}: {error}") from None
        print(f"saved the state dict to {args.save}")
    return 0


# ------------------------------------------------------------------------------------------------
# convforge summary / info


def summary_command(args):
    from . import models
    from ._summary import summary

    if args.model in IMAGENET_MODELS:
        summary(getattr(models, args.model)(), (3, 224, 224))
    else:
        summary(_make_model(args.model, 1, 10), (1, 32, 32))
    return 0


def info_command(args):
    import convforge

    for key, value in convforge.info().items():
        print(f"{key}: {value}")
    return 0

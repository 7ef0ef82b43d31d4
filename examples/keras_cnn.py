"""Keras 3 on its torch backend, trained on convforge's kernels with one line.

The Fashion-MNIST CNN of the Keras tutorials (Conv2D 32, MaxPooling2D, Conv2D 64, MaxPooling2D,
Flatten, Dense 10), on random images of Fashion-MNIST's shape (no download), trained twice from
the same weights: once on torch's own kernels, once inside ``convforge.torch.enabled()``::

    pip install ".[torch]" "keras>=3.8"
    python examples/keras_cnn.py                 # losses of both runs, side by side
    python examples/keras_cnn.py --json          # the same, as JSON (the test suite reads it)

Keras's Conv2D and MaxPooling2D call ``torch.nn.functional.conv2d`` / ``max_pool2d`` on
channels-first views of its channels-last tensors: under the switch those calls run on convforge
(forward and backward), the view is copied once to NCHW (``convforge.torch.contiguous_copies``),
and Dense (``torch.matmul``) stays on torch. The torch profiler shows which kernels ran.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import argparse
import json
import sys

import numpy as np
import torch

import convforge.torch


def make_model(keras):
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])


def fit(keras, weights, x, y, args):
    model = make_model(keras)
    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(args.lr, momentum=0.9),
                  loss="sparse_categorical_crossentropy", jit_compile=False)
    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, shuffle=False, verbose=0)
    # One more step under the profiler: which kernels ran, forward and backward.
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        model.train_on_batch(x[:args.batch_size], y[:args.batch_size])
    ops = sorted({event.key for event in profile.key_averages()
                  if event.key.startswith(("convforge::", "aten::convolution", "aten::max_pool2d"))})
    return history.history["loss"], ops


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    import keras

    if keras.backend.backend() != "torch":
        sys.exit(f"KERAS_BACKEND is {keras.backend.backend()!r}: convforge needs Keras's torch backend")
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x = rng.random((args.samples, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)
    weights = make_model(keras).get_weights()

    native, native_ops = fit(keras, weights, x, y, args)
    for counter in (convforge.torch.dispatched, convforge.torch.fallbacks, convforge.torch.contiguous_copies):
        counter.clear()
    with convforge.torch.enabled():  # the one line
        switched, switched_ops = fit(keras, weights, x, y, args)

    result = {
        "native_losses": native, "convforge_losses": switched,
        "native_ops": native_ops, "convforge_ops": switched_ops,
        "dispatched": dict(convforge.torch.dispatched), "fallbacks": dict(convforge.torch.fallbacks),
        "contiguous_copies": dict(convforge.torch.contiguous_copies),
        "steps": args.epochs * -(-args.samples // args.batch_size) + 1,
    }
    if args.json:
        print(json.dumps(result))
        return
    for epoch, (a, b) in enumerate(zip(native, switched), 1):
        print(f"epoch {epoch}: loss native {a:.7f}  convforge {b:.7f}")
    print("kernels (native):   ", ", ".join(native_ops))
    print("kernels (convforge):", ", ".join(switched_ops))
    print("calls run on convforge:", result["dispatched"])
    print("calls left to torch:   ", result["fallbacks"] or "none")


if __name__ == "__main__":
    main()

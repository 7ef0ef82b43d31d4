"""The main job: ``convforge train`` end to end on a tiny budget, its errors, reproducibility,
save/load; a short training run lowers the loss; ``convforge summary`` counts."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import convforge
import convforge.nn as nn
from convforge import cli, data, models, optim
from convforge import summary
from test_data import write_mnist

TINY = ["train", "--epochs", "1", "--limit", "64", "--batch-size", "16", "--no-progress", "--threads", "1"]


def run_cli(*argv):
    """``python -m convforge ...`` in a subprocess (the same package as the tests import)."""
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(convforge.__file__))
    env["PYTHONPATH"] = os.pathsep.join([package_parent, env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "convforge", *argv], capture_output=True, text=True,
                          env=env, timeout=300)


def figures(text):
    """The accuracy and loss figures of a run (times excluded: they vary)."""
    return re.findall(r"(?:loss|accuracy:|train|test) (\d+\.\d+)", text)


def test_train_end_to_end_subprocess(tmp_path):
    result = run_cli(*TINY, "--save", str(tmp_path / "m.npz"))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "lenet on digits (64 train / 64 test" in out
    assert re.search(r"train accuracy: \d+\.\d\d %\s+test accuracy: \d+\.\d\d %", out)
    assert re.search(r"time per epoch: \d+\.\d\d s\s+training speed: [\d,]+ samples/s", out)
    assert (tmp_path / "m.npz").exists()


def test_train_is_reproducible_and_load_resumes(tmp_path, capsys):
    assert cli.main([*TINY, "--seed", "3", "--save", str(tmp_path / "a.npz")]) == 0
    first = capsys.readouterr().out
    assert cli.main([*TINY, "--seed", "3", "--optimizer", "sgd"]) == 0
    second = capsys.readouterr().out
    assert figures(first) and figures(first) == figures(second)
    # --epochs 0 with --load evaluates the saved model: the same final accuracies
    assert cli.main([*TINY[:2], "0", *TINY[3:], "--load", str(tmp_path / "a.npz")]) == 0
    evaluated = capsys.readouterr().out
    final = re.compile(r"train accuracy: .*")
    assert final.search(evaluated).group() == final.search(first).group()


def test_train_adam_and_vgg_small(capsys):
    assert cli.main([*TINY, "--optimizer", "adam", "--model", "vgg-small", "--limit", "16", "--lr", "0.001"]) == 0
    out = capsys.readouterr().out
    assert "vgg-small on digits (16 train / 16 test" in out and "adam lr=0.001" in out


def test_train_on_mnist_files(tmp_path, capsys):
    directory = write_mnist(tmp_path / "mnist", n_train=20, n_test=8)
    assert cli.main([*TINY, "--data", f"mnist:{directory}"]) == 0
    assert "(20 train / 8 test, 1x32x32)" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--data", "mnist:/nonexistent/dir"], "no such directory"),
    (["--data", "mnist:{tmp}"], "missing train-images-idx3-ubyte"),
    (["--data", "mnist:{tmp}/bad"], "truncated IDX file"),
    (["--load", "{tmp}/garbage.npz"], "not a .npz archive"),
    (["--load", "{tmp}/other.npz"], "missing keys"),
    (["--data", "cifar"], "expected 'digits' or 'mnist:DIR'"),
])
def test_train_errors_are_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "garbage.npz").write_bytes(b"garbage")
    nn.save({"w": np.zeros(3, np.float32)}, tmp_path / "other.npz")
    bad = write_mnist(tmp_path / "bad", gz=False)
    (bad / "t10k-images-idx3-ubyte").write_bytes((bad / "t10k-images-idx3-ubyte").read_bytes()[:100])
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli.main([*TINY, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("convforge train: error:") and message in err


def test_missing_data_dir_subprocess_exit_code():
    result = run_cli("train", "--data", "mnist:/nonexistent/dir")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "no such directory" in result.stderr


def test_bad_options_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--epochs", "-1"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["train", "--model", "resnet"])


def test_short_training_run_lowers_the_loss():
    dataset = data.load_digits().limit(96)
    nn.manual_seed(0)
    model = models.lenet5()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def full_loss():
        model.eval()
        value = float(criterion(model(dataset.train_images), dataset.train_labels))
        model.train()
        return value

    before = full_loss()
    rng = np.random.default_rng(0)
    for _ in range(3):
        order = rng.permutation(96)
        for start in range(0, 96, 16):
            batch = order[start:start + 16]
            optimizer.zero_grad()
            criterion(model(dataset.train_images[batch]), dataset.train_labels[batch])
            model.backward(criterion.backward(), need_input_grad=False)
            optimizer.step()
    after = full_loss()
    assert after < 0.9 * before, (before, after)  # 2.30 -> ~1.8 in these 18 steps


def test_summary_counts(capsys):
    assert summary(nn.Conv2d(3, 18, 5), (3, 32, 32), print_summary=False).total_params == 1368
    lenet = summary(models.lenet5(), (1, 32, 32))
    out = capsys.readouterr().out
    assert lenet.total_params == 61706 and "61,706" in out and "Total params" in out
    assert [r.output_shape for r in lenet.rows][:3] == [(1, 6, 28, 28)] * 2 + [(1, 6, 14, 14)]
    assert "Total params: 61,706" in str(lenet)  # the plain-text table, used without rich
    vgg = summary(models.vgg16(), (3, 224, 224), print_summary=False)
    assert vgg.total_params == 138_357_544 and vgg.output_shape == (1, 1000)
    assert list(vgg.rows[0].output_shape) == [1, 64, 224, 224]
    assert abs(vgg.param_bytes / 2**20 - 527.79) < 0.01  # as torchsummary reports VGG-16


def test_summary_command(capsys):
    assert cli.main(["summary", "--model", "vgg-small"]) == 0
    assert "Total params" in capsys.readouterr().out
    assert cli.main(["info"]) == 0
    assert "isa:" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# resnet-small, --augment, --early-stopping


def test_train_resnet_small_saves_its_batchnorm_statistics(tmp_path, capsys):
    argv = [*TINY, "--model", "resnet-small", "--limit", "48"]
    assert cli.main([*argv, "--save", str(tmp_path / "r.npz")]) == 0
    out = capsys.readouterr().out
    assert "resnet-small on digits (48 train / 48 test" in out and "augment" not in out and "val" not in out
    assert "layer1.0.bn1.running_var" in nn.load(tmp_path / "r.npz")
    # evaluating the saved model (eval mode: the running statistics) gives the same accuracies
    assert cli.main([*argv[:2], "0", *argv[3:], "--load", str(tmp_path / "r.npz")]) == 0
    final = re.compile(r"train accuracy: .*")
    assert final.search(capsys.readouterr().out).group() == final.search(out).group()


def test_augment_shifts_and_flips():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((64, 2, 16, 16)).astype(np.float32)
    flipped = cli._augment(images, np.random.default_rng(1), ("flip",))
    mirrored = [np.array_equal(a, b[..., ::-1]) for a, b in zip(flipped, images)]
    unchanged = [np.array_equal(a, b) for a, b in zip(flipped, images)]
    assert all(m or u for m, u in zip(mirrored, unchanged)) and 16 < sum(mirrored) < 48
    shifted = cli._augment(images, np.random.default_rng(1), ("shift",))
    padded = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")  # up to 16 // 8 = 2 pixels
    offsets = []
    for out, pad in zip(shifted, padded):
        found = [(dy, dx) for dy in range(5) for dx in range(5) if np.array_equal(out, pad[:, dy:dy + 16, dx:dx + 16])]
        assert found, "each image is a shifted crop of its edge-padded self"
        offsets.append(found[0])
    assert len(set(offsets)) > 15  # the shifts vary from image to image (25 possible)
    both = cli._augment(images, np.random.default_rng(1), ("shift", "flip"))
    assert np.array_equal(both, cli._augment(images, np.random.default_rng(1), ("shift", "flip")))  # seeded
    assert not np.array_equal(both, shifted) and both.dtype == images.dtype


def test_train_augment_is_seeded(capsys):
    runs = []
    for argv in (["--augment"], ["--augment"], ["--augment", "shift"], []):
        assert cli.main([*TINY, "--seed", "2", *argv]) == 0
        runs.append(capsys.readouterr().out)
    assert "augment shift+flip" in runs[0] and "augment shift," not in runs[0]
    assert figures(runs[0]) == figures(runs[1])  # the same seed, the same augmented batches
    assert figures(runs[0]) != figures(runs[3]) and figures(runs[2]) != figures(runs[3])
    with pytest.raises(SystemExit):
        cli.main([*TINY, "--augment", "rotate"])


def test_train_early_stopping_restores_the_best_epoch(capsys):
    argv = [*TINY, "--epochs", "8", "--early-stopping", "1", "--lr", "0.2"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "(58 train / 64 test" in out and "early stopping (patience 1) on 6 held-out samples" in out
    epochs = re.findall(r"epoch (\d+)/8 .* test (\d+\.\d\d) %  val loss (\d+\.\d+)", out)
    losses = [float(v) for _, _, v in epochs]
    best = int(np.argmin(losses))
    assert "early stopping: the held-out loss has not improved for 1 epoch" in out
    assert len(epochs) == best + 2 < 8  # stopped one epoch after the best
    assert f"restored the weights of epoch {best + 1} (held-out loss {losses[best]:.4f})" in out
    # the final evaluation is that of the best epoch's weights
    assert re.search(r"test accuracy: (\d+\.\d\d) %", out).group(1) == epochs[best][1]


@pytest.mark.parametrize("name,params", [("resnet-small", "77,754"), ("alexnet", "61,100,840"),
                                         ("resnet18", "11,689,512"), ("googlenet", "6,624,904")])
def test_summary_command_models(name, params, capsys):
    assert cli.main(["summary", "--model", name]) == 0
    assert f"Total params: {params}" in capsys.readouterr().out

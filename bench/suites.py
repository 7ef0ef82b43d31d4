"""The benchmark suites, as data: one table of cases per op family. The runner (bench.run) and
the op families (bench.ops) turn a case into inputs, candidates and peers; nothing here is code
per suite. Shapes follow the public layer suite of the performance notes.

A case's `quick` flag puts it in the subset that `--quick` runs.
"""

from dataclasses import dataclass, field

PASSES = ("fwd", "bwd")


@dataclass(frozen=True)
class Case:
    suite: str
    name: str
    params: dict = field(hash=False, compare=False)
    passes: tuple = ("fwd",)
    bound: str = "compute"  # what limits it on a CPU: "compute" (FMA) or "memory" (DRAM)
    quick: bool = False

    def describe(self):
        return DESCRIBE[self.suite](self.params)


def _gemm(name, m, n, k, trans_b=False, quick=False):
    return Case("gemm", name, dict(m=m, n=n, k=k, trans_b=trans_b), quick=quick)


def _conv(name, n, c_in, h, w, c_out, k, stride=1, padding=0, groups=1, quick=False):
    params = dict(n=n, c_in=c_in, h=h, w=w, c_out=c_out, k=k, stride=stride, padding=padding, groups=groups)
    bound = "memory" if groups == c_in == c_out else "compute"  # depthwise streams its tensors
    return Case("conv2d", name, params, passes=PASSES, bound=bound, quick=quick)


def _pool(name, mode, shape, k, stride, padding=0, quick=False):
    params = dict(mode=mode, shape=tuple(shape), k=k, stride=stride, padding=padding)
    return Case("pool2d", name, params, passes=PASSES, bound="memory", quick=quick)


SQUARE_GEMM_SIZES = (128, 256, 512, 1024, 2048, 4096)

GEMM = (
    *[_gemm(f"square_{n}", n, n, n, quick=n in (256, 1024)) for n in SQUARE_GEMM_SIZES],
    # Linear layers, y = x @ W.T with W stored (out_features, in_features) as torch.nn.Linear does.
    _gemm("linear_64x400x120", 64, 120, 400, trans_b=True, quick=True),  # LeNet fc1
    _gemm("linear_64x120x84", 64, 84, 120, trans_b=True),  # LeNet fc2
    _gemm("linear_64x9216x4096", 64, 4096, 9216, trans_b=True, quick=True),  # AlexNet fc6
    _gemm("linear_64x4096x4096", 64, 4096, 4096, trans_b=True),  # AlexNet fc7
)

CONV2D = (
    _conv("lenet_conv1", 64, 1, 28, 28, 6, 5, quick=True),
    _conv("lenet_conv2", 64, 6, 12, 12, 16, 5),
    _conv("cnn32_conv1", 64, 3, 32, 32, 32, 3, padding=1),
    _conv("cnn32_conv2", 64, 32, 16, 16, 64, 3, padding=1, quick=True),
    _conv("alexnet_conv1", 8, 3, 227, 227, 96, 11, stride=4),
    _conv("vgg_conv1_2", 1, 64, 224, 224, 64, 3, padding=1),
    _conv("vgg_conv3_2", 8, 256, 56, 56, 256, 3, padding=1),
    _conv("vgg_conv5_x", 8, 512, 14, 14, 512, 3, padding=1),
    _conv("resnet_1x1", 8, 256, 56, 56, 64, 1, quick=True),
    _conv("resnet_3x3s2", 8, 128, 56, 56, 128, 3, stride=2, padding=1),
    _conv("depthwise_3x3", 8, 128, 56, 56, 128, 3, padding=1, groups=128, quick=True),
)

POOL_SHAPE = (32, 64, 112, 112)
POOL_SHAPE_QUICK = (8, 64, 56, 56)  # a quarter of the channels' planes at half the size

POOL2D = (
    _pool("max_k2s2", "max", POOL_SHAPE, 2, 2),
    _pool("max_k3s2p1", "max", POOL_SHAPE, 3, 2, padding=1),
    _pool("avg_k2s2", "avg", POOL_SHAPE, 2, 2),
    _pool("avg_k3s2p1", "avg", POOL_SHAPE, 3, 2, padding=1),
    _pool("max_k2s2_small", "max", POOL_SHAPE_QUICK, 2, 2, quick=True),
    _pool("avg_k3s2p1_small", "avg", POOL_SHAPE_QUICK, 3, 2, padding=1, quick=True),
)

TRAIN = (
    Case("train", "lenet_digits", dict(model="lenet5", data="digits", batch_size=64, limit=None), passes=("epoch",)),
    # The same on the first 512 digits: samples/s and the ratio stay comparable, the run is short.
    Case("train", "lenet_digits_512", dict(model="lenet5", data="digits", batch_size=64, limit=512),
         passes=("epoch",), quick=True),
    # One training step of a full-width ResNet-18 on 8 images of 224x224, native torch against
    # convforge.torch.enabled(), in torch's fastest CPU layout and in NCHW.
    *[Case("train", f"resnet18_step_{fmt}", dict(model="resnet18", batch_size=8, size=224, memory_format=fmt),
           passes=("step",)) for fmt in ("channels_last", "nchw")],
)

SUITES = {"gemm": GEMM, "conv2d": CONV2D, "pool2d": POOL2D, "train": TRAIN}
ALL = tuple(SUITES)


def _describe_gemm(p):
    b = "(%d,%d).T" % (p["n"], p["k"]) if p["trans_b"] else "(%d,%d)" % (p["k"], p["n"])
    return f"({p['m']},{p['k']}) @ {b}"


def _describe_conv(p):
    text = f"{p['n']}x{p['c_in']}x{p['h']}x{p['w']} -> {p['c_out']}, k{p['k']} s{p['stride']} p{p['padding']}"
    return text + (f" g{p['groups']}" if p["groups"] > 1 else "")


def _describe_pool(p):
    return "x".join(map(str, p["shape"])) + f", {p['mode']} k{p['k']} s{p['stride']} p{p['padding']}"


def _describe_train(p):
    if p["model"] == "resnet18":
        return f"resnet18, batch {p['batch_size']} of {p['size']}x{p['size']}, {p['memory_format']}, one step"
    subset = f" (first {p['limit']})" if p.get("limit") else ""
    return f"{p['model']} on {p['data']}{subset}, batch {p['batch_size']}, one epoch"


DESCRIBE = {"gemm": _describe_gemm, "conv2d": _describe_conv, "pool2d": _describe_pool, "train": _describe_train}


def parse_list(text, allowed, what):
    """'a,b' -> ('a', 'b'), each checked against `allowed` (order kept, duplicates dropped)."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ValueError(f"{what}: expected a comma-separated list of {', '.join(allowed)}, got {text!r}")
    for item in items:
        if item not in allowed:
            raise ValueError(f"{what}: expected one of {', '.join(allowed)}, got {item!r}")
    return tuple(dict.fromkeys(items))


def parse_threads(text):
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    try:
        threads = tuple(dict.fromkeys(int(t) for t in items))
    except ValueError:
        threads = ()
    if not threads or min(threads) < 1:
        raise ValueError(f"--threads: expected a comma-separated list of positive integers, got {text!r}")
    return threads


def select(suites, quick=False, shapes=None, passes=None, table=None):
    """The cases to run, in table order: [(case, pass), ...]. `shapes` (names) overrides
    `quick`; unknown shape names are an error listing the valid ones. `table`: the suites to
    choose from (default SUITES; bench/device.py has the GPU ones)."""
    chosen = [c for s in suites for c in (table or SUITES)[s]]
    if shapes:
        known = {c.name for c in chosen}
        unknown = [s for s in shapes if s not in known]
        if unknown:
            raise ValueError(
                f"--shapes: unknown {', '.join(unknown)} for suite(s) {', '.join(suites)}; "
                f"expected some of {', '.join(sorted(known))}"
            )
        chosen = [c for c in chosen if c.name in shapes]
    elif quick:
        chosen = [c for c in chosen if c.quick]
    return [(c, p) for c in chosen for p in c.passes if passes is None or p in passes or p == "epoch"]

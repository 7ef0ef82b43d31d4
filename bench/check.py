"""Check, then time: every contestant's result is compared with the float64 reference before a
single sample is taken. A wrong result stops the benchmark with a CheckError that says who, on
which case, which output, and by how much; a fast wrong kernel is never reported.

The allowed error is the test suite's derived tolerance (tests/helpers.py): a small multiple of
what a float32 sum of `depth` terms of total magnitude `magnitude` may drift.
"""

from dataclasses import dataclass

import numpy as np

from tests.helpers import tolerance


class CheckError(AssertionError):
    """A contestant's result disagrees with the reference."""


@dataclass
class Expected:
    """One output of an op: the float64 reference value, and for float outputs the magnitude
    (the reference on |inputs|) and summation depth that set the tolerance; integer outputs
    (pooling indices) must match exactly."""

    name: str
    value: np.ndarray
    magnitude: np.ndarray | None = None
    depth: int = 1


def compare(label, actual, expected):
    """Raises CheckError unless `actual` (a list of arrays) matches `expected` (Expected list)."""
    if len(actual) != len(expected):
        raise CheckError(f"{label}: expected {len(expected)} outputs, got {len(actual)}")
    for got, want in zip(actual, expected):
        got = np.asarray(got)
        what = f"{label}: {want.name}"
        if got.shape != want.value.shape:
            raise CheckError(f"{what}: expected shape {want.value.shape}, got {got.shape}")
        if want.magnitude is None:
            bad = got != want.value
            if bad.any():
                i = np.unravel_index(np.argmax(bad), bad.shape)
                raise CheckError(
                    f"{what}: {int(bad.sum())} of {bad.size} values differ; first at {i}: "
                    f"got {got[i]!r}, expected {want.value[i]!r}"
                )
            continue
        got64 = got.astype(np.float64)
        error = np.abs(got64 - want.value)
        allowed = tolerance(want.magnitude, want.depth, np.float32)
        bad = ~(error <= allowed)  # NaN counts as bad
        if bad.any():
            i = np.unravel_index(np.argmax(np.where(bad, np.nan_to_num(error - allowed, nan=np.inf), -np.inf)), bad.shape)
            raise CheckError(
                f"{what}: {int(bad.sum())} of {bad.size} values off the float64 reference; worst at "
                f"{i}: got {got[i]!r}, expected {want.value[i]!r}, allowed error {np.broadcast_to(allowed, bad.shape)[i]:.3g}"
            )


def memory_format(a):
    """The memory format of a 4-D array by torch's rule: "nchw" when C-contiguous (ties, such as
    one channel, read as NCHW), "channels_last" for NHWC memory viewed as NCHW, else "strided";
    None for other ranks."""
    a = np.asarray(a)
    if a.ndim != 4:
        return None
    if a.flags.c_contiguous:
        return "nchw"
    return "channels_last" if a.transpose(0, 2, 3, 1).flags.c_contiguous else "strided"


def compare_formats(label, formats, expected, peer_formats=None):
    """Raises CheckError unless the 4-D outputs (their `formats`, from memory_format) are dense
    and, given `peer_formats` (label -> formats of a peer run on inputs in the same layout), in
    the same memory format as each peer's: a result in another format would be timed without the
    conversion its user pays for."""
    for i, (got, want) in enumerate(zip(formats, expected)):
        if got == "strided":
            raise CheckError(f"{label}: {want.name}: expected a dense NCHW or channels_last array, got a strided one")
        for peer, theirs in (peer_formats or {}).items():
            if got is not None and theirs[i] is not None and got != theirs[i]:
                raise CheckError(f"{label}: {want.name}: returned in {got} memory format, {peer} in {theirs[i]} "
                                 "from the same inputs")

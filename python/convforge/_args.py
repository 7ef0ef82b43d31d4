"""Normalising torch-style arguments (int or pair, 'same'/'valid') with clear errors."""

import numbers


def pair(value, name):
    """An int or a sequence of two ints -> (int, int)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 1:
        return pair(value[0], name)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")


def positive_pair(value, name):
    result = pair(value, name)
    if min(result) <= 0:
        raise ValueError(f"{name}: expected positive values, got {value!r}")
    return result

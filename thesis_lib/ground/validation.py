"""Argument checks shared by the library.

Every public entry point checks its arguments before it does any work and raises a
``ValueError`` that names the parameter, the value it got and what is allowed.

This module does not import torch at import time: :mod:`thesis_lib.ground.config`, which must stay light
(no torch), imports it. The tensor checks import torch when they are called, which costs nothing
then (a tensor argument means torch is loaded already).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only, see the module docstring
    pass


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``; otherwise raise ``ValueError``."""
    allowed = list(allowed)
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {shown}; got {value!r}")
    return value


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) greater than zero."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer (1, 2, 3, ...); got {value!r}")
    return value


def check_nonnegative_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) that is zero or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer (0, 1, 2, ...); got {value!r}")
    return value


def check_positive_float(name: str, value: Any) -> float:
    """Return ``float(value)`` if it is a finite real number greater than zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number greater than 0; got {value!r}")
    return float(value)


def check_finite_float(name: str, value: Any) -> float:
    """Return ``float(value)`` if it is a finite real number (an ``int`` or ``float``, not a ``bool``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number; got {value!r}")
    return float(value)


def check_nonnegative_float(name: str, value: Any) -> float:
    """Return ``float(value)`` if it is a finite real number that is zero or more."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return float(value)


def check_unit_interval(name: str, value: Any, *, closed_right: bool = False) -> float:
    """Return ``float(value)`` if it lies in [0, 1) (or [0, 1] with ``closed_right``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and 0 <= value and (value <= 1 if closed_right else value < 1)
    if not ok:
        interval = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"{name} must be a number in {interval}; got {value!r}")
    return float(value)


def check_widths(name: str, widths: Any, *, min_len: int = 2) -> tuple[int, ...]:
    """Return ``widths`` as a tuple of positive ints with at least ``min_len`` entries."""
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise ValueError(f"{name} must be a sequence of positive integers; got {widths!r}")
    if len(widths) < min_len:
        raise ValueError(f"{name} must have at least {min_len} entries; got {list(widths)!r}")
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int) or w <= 0:
            raise ValueError(f"{name} must contain positive integers only; got {list(widths)!r}")
    return tuple(widths)


def check_str_sequence(name: str, value: Any, length: int | None = None) -> list[str]:
    """Return ``value`` as a list if it is a sequence of ``str`` (not a string itself), of ``length`` entries
    if given."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a sequence of strings; got {value!r}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have {length} entries; got {len(value)}: {list(value)!r}")
    if not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must contain strings only; got {list(value)!r}")
    return list(value)

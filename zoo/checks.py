"""Checks of the values a user gives: each returns the value converted, or raises a one-line
`ConfigError` naming the argument, the value and what is allowed.

Example::

    integer("--epochs", 0, low=1)       # ConfigError: --epochs must be an integer >= 1, got 0
    number("--lr", "1e-3", low=0, low_open=True)               # 0.001
    each("--sizes", "224,160", size)                           # [224, 160]
    input_size("--input-size", "224x288")                      # (224, 288)
    folder("--out", "bench_out")   # a Path; ConfigError when it (or a parent) is a file

Entry points (train.py, export.py, ``python -m zoo``, ``python -m zoo.bench``) check their
arguments with these before they create anything, and name an argument as it is typed
(`flag`). `int_range` and `one_of` make the ``check(name, value)`` callables that option
dataclasses take. Fire hands over what it parsed: ints, floats (``1e999`` is inf), strings
(``nan``, ``abc``), booleans (a flag given without a value), tuples (``224,160``).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError

STRIDE = 32  # input sides are multiples of the deepest tap's stride (P5)


def flag(name: str) -> str:
    """The command-line spelling of a parameter: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def _bounds(low: float | None, high: float | None, low_open: bool = False,
            high_open: bool = False) -> str:
    """`` >= 1``, `` between 13 and 18``, `` > 0``, `` > 0 and <= 1`` or ""."""
    if low is not None and high is not None and not (low_open or high_open):
        return f" between {_text(low)} and {_text(high)}"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {_text(low)}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {_text(high)}")
    return (" " + " and ".join(parts)) if parts else ""


def _text(bound: float) -> str:
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def _as_integer(value: Any) -> int | None:
    """`value` as an int when it is one (``3``, ``3.0``, ``"3"``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    as_float = _as_float(value)
    if as_float is None or not math.isfinite(as_float) or not as_float.is_integer():
        return None
    return int(as_float)


def _as_float(value: Any) -> float | None:
    """`value` as a float (possibly nan or inf) when it reads as a number, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except OverflowError:  # an int beyond float's range, e.g. 10**400
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def integer(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int with ``low <= value <= high`` (either bound may be None)."""
    number_ = _as_integer(value)
    if number_ is None or (low is not None and number_ < low) or (
            high is not None and number_ > high):
        raise ConfigError(f"{name} must be an integer{_bounds(low, high)}, got {value!r}")
    return number_


def number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
           low_open: bool = False, high_open: bool = False) -> float:
    """`value` as a finite float within the bounds (open bounds exclude themselves)."""
    x = _as_float(value)
    ok = x is not None and math.isfinite(x)
    if ok and low is not None:
        ok = x > low if low_open else x >= low
    if ok and high is not None:
        ok = x < high if high_open else x <= high
    if not ok:
        raise ConfigError(f"{name} must be a finite number"
                          f"{_bounds(low, high, low_open, high_open)}, got {value!r}")
    return x


def optional(check: Callable[..., Any]) -> Callable[..., Any]:
    """`check` that lets None through (an argument left unset)."""

    def checked(name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        return None if value is None else check(name, value, *args, **kwargs)

    return checked


def choice(name: str, value: Any, allowed: Iterable[str]) -> Any:
    """`value` when it is one of `allowed`."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return value


def size(name: str, value: Any) -> int:
    """A square input side: a positive multiple of 32."""
    side = _as_integer(value)
    if side is None or side < STRIDE or side % STRIDE:
        raise ConfigError(f"{name} must be a positive multiple of {STRIDE}, got {value!r}")
    return side


def input_size(name: str, value: Any) -> tuple[int, int]:
    """(height, width) from ``224``, ``(224, 288)``, ``[224, 288]`` or ``"224x288"``; each side
    a positive multiple of 32 (the P5 tap is at stride 32)."""
    sides: Any = None
    if isinstance(value, str):
        try:
            sides = tuple(int(p) for p in value.lower().replace(",", "x").split("x"))
        except ValueError:
            sides = None
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        sides = (int(value),)
    elif isinstance(value, list | tuple) and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in value):
        sides = tuple(int(s) for s in value)
    if sides is not None and len(sides) == 1:
        sides = (sides[0], sides[0])
    if sides is None or len(sides) != 2 or any(s < STRIDE or s % STRIDE for s in sides):
        raise ConfigError(f"{name} must be N or HxW, each side a positive multiple of {STRIDE} "
                          f"(e.g. 224 or 224x288), got {value!r}")
    return sides


def each(name: str, value: Any, check: Callable[[str, Any], Any]) -> list:
    """`check` applied to every item of a comma list (``"a,b"``, a tuple, or one value); an
    empty list is an error too."""
    if isinstance(value, str):
        items: list = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        items = [value]
    if not items:
        raise ConfigError(f"{name} must list at least one value, got {value!r}")
    return [check(name, item) for item in items]


def folder(name: str, value: Any) -> Path:
    """A folder to write into: an existing folder, or a path where one can be made (neither it
    nor a parent is a file). Nothing is created here."""
    path = Path(os.path.expanduser(str(value)))
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                what = "is a file" if part == path else f"is below the file {str(part)!r}"
                raise ConfigError(f"{name} must be a folder, got {str(value)!r} (it {what})")
            break
    return path


def boolean(name: str, value: Any) -> bool:
    """`value` as a bool: True/False, or the strings true/false/1/0 a command line gives."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def int_range(low: int | None = None, high: int | None = None) -> Callable[[str, Any], int]:
    """``check(name, value)`` for an integer option within the bounds."""

    def check(name: str, value: Any) -> int:
        return integer(name, value, low, high)

    return check


def one_of(*allowed: str) -> Callable[[str, Any], Any]:
    """``check(name, value)`` for an option taking one of `allowed`."""

    def check(name: str, value: Any) -> Any:
        return choice(name, value, allowed)

    return check

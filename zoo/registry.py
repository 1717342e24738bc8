"""Name -> object registries: register / get / list with glob patterns.

Example::

    BACKBONES = Registry("backbone")

    @BACKBONES.register("mobilenet_v2")
    def mobilenet_v2(...): ...

    BACKBONES.get("mobilenet_v2")
    BACKBONES.list("mobilenet_v3*")   # ['mobilenet_v3_large', 'mobilenet_v3_small']

Registering a name twice raises; an unknown name raises `UnknownNameError` listing the valid
names and the closest match. This module imports nothing of the project.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Any


class RegistryError(ValueError):
    """A registry misuse or an unknown name (a `ValueError`, so CLIs report it in one line)."""


class UnknownNameError(RegistryError, LookupError):
    """A name that is not registered."""


def unknown_name_message(kind: str, name: str, valid: list[str]) -> str:
    """One-line message for an unknown `name` among `valid`, with the closest match if any."""
    close = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} valid: {', '.join(valid) or '(none)'}"


class Registry:
    """A named collection of objects of one kind (backbones, heads, archs, export formats)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def register(self, name: str, obj: Any = None) -> Any:
        """Register `obj` under `name`; without `obj`, return a decorator that does it."""
        if obj is None:
            def decorator(fn: Callable) -> Callable:
                self.register(name, fn)
                return fn

            return decorator
        if name in self._entries:
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj
        return obj

    def get(self, name: str) -> Any:
        """The object registered as `name`; `UnknownNameError` with the valid names otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(unknown_name_message(self.kind, name, self.list())) from None

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted names matching the glob `pattern` (e.g. ``"mobilenet_v3*"``)."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._entries)

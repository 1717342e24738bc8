"""Running fire CLIs: user errors become one line on stderr and exit status 2."""

from __future__ import annotations

import os
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def run(component: Any, name: str | None = None) -> None:
    """`fire.Fire(component)`; a `ValueError` from bad input prints ``error: ...`` and exits 2."""
    import fire

    from zoo.errors import ZooError
    from zoo.registry import RegistryError

    args = sys.argv[1:]
    if any(a in ("-h", "--help") for a in args) and "--" not in args:
        # Fire binds --help to a **kwargs parameter; after "--" it is Fire's own flag.
        args = [a for a in args if a not in ("-h", "--help")] + ["--", "--help"]
    try:
        fire.Fire(component, command=args, name=name)
    except (ZooError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

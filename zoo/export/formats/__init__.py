"""Export formats: one module per format, each registering itself in `FORMATS` on import.

Every module of this folder is a format module and is imported here when `zoo.export` is, so
adding a format is adding one file (shared conversion helpers live one folder up).
"""

from __future__ import annotations

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

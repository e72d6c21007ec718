"""Another version of a grokpath module, loaded from a file to be timed beside the current one
(`--baseline-extraction`, `--baseline-tables` and `--baseline-stages` of routing_overhead.py,
`--baseline-tables` of storage.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_module(path: Path, name: str) -> ModuleType:
    """The module in `path`, registered as `name` (dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path} as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module

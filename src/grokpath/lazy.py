"""Modules imported where they are first used, not where a module names them."""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands for the module `name`, imported on the first attribute read (`pl.DataFrame`).

    polars takes ~0.1 s to import, a third of a small distance job (compute_pathways,
    pathway_distance, ablate_tau, cross_domain_distance: 0.31-0.37 s each with it, hundreds per
    run), and those jobs never use it; `tables` and `stages` name it for the jobs that do."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"

"""Lazy package namespaces: a package lists which submodule defines each public name and imports it on first use,
so importing a package (or ``fkd_hf`` itself) loads neither torch nor transformers until a name needs them."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_namespace(
    package: str, namespace: dict, structure: dict[str, list[str]]
) -> tuple[list[str], Callable, Callable]:
    """``(__all__, __getattr__, __dir__)`` for ``package`` whose globals are ``namespace``; ``structure`` maps a
    submodule (relative to ``package``) to the names it defines."""
    module_of = {name: module for module, names in structure.items() for name in names}

    def __getattr__(name: str):
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(module_of))

    return list(module_of), __getattr__, __dir__

"""Lazy package exports, so that importing a package — as ``isp-bench --help`` does for every command
module's package — does not import numpy, torch or pyarrow until one of its names is used."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types


def lazy_package(package: str, exports: dict[str, str]) -> None:
    """Make ``package`` (called from its ``__init__`` with ``__name__``) resolve ``exports`` on first use.

    ``exports`` maps each public name to the submodule defining it (``{"publish": ".publish"}``); the
    submodule is imported when the name is first read, and the value kept in the package. Submodules
    not listed (``package.checks``) are imported on attribute access, as an eager ``__init__`` made them
    available. A public name equal to its submodule's name (``isp_bench.hub.publish``, the function)
    stays the function when that submodule is imported, as with eager ``from .publish import publish``.
    The package's class becomes a :class:`types.ModuleType` subclass (Python data model, "Customizing
    module attribute access").
    """

    class LazyPackage(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            if name in exports:
                value = getattr(importlib.import_module(exports[name], package), name)
            elif not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
                value = importlib.import_module(f"{package}.{name}")
            else:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            super().__setattr__(name, value)
            return value

        def __setattr__(self, name: str, value: object) -> None:
            if name in exports and isinstance(value, types.ModuleType) and value.__name__ == f"{package}.{name}":
                return  # the import system binding a submodule that shares a public name
            super().__setattr__(name, value)

        def __dir__(self) -> list[str]:
            return sorted(set(vars(self)) | set(exports))

    sys.modules[package].__class__ = LazyPackage

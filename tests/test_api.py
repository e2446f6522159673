"""The public API stays a handful of callables, whatever submodules get imported."""

from __future__ import annotations

import importlib
import pkgutil

import tailored


def test_public_names_are_functions_even_after_every_submodule_is_imported():
    for module in pkgutil.walk_packages(tailored.__path__, "tailored."):
        importlib.import_module(module.name)
    assert set(tailored.__all__) == {"check", "train", "evaluate", "load", "serve"}
    for name in tailored.__all__:
        assert callable(getattr(tailored, name)), f"tailored.{name} is shadowed by a module"

"""Every public name says what it is: a docstring on each class and function of the public
modules, and on each of their public methods."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

import statemachine
import statemachine.importers
import statemachine.operations
import statemachine.replay
import statemachine.testing


def _public(module: ModuleType) -> list[tuple[str, object]]:
    names = getattr(module, "__all__", None) or [
        n for n in dir(module)
        if not n.startswith("_") and getattr(getattr(module, n), "__module__", "") == module.__name__
    ]  # fmt: skip
    found: list[tuple[str, object]] = []
    for name in names:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        found.append((f"{module.__name__}.{name}", obj))
        if inspect.isclass(obj):
            for attr, value in vars(obj).items():
                target = value.fget if isinstance(value, property) else value
                if isinstance(target, classmethod | staticmethod):
                    target = target.__func__
                if not attr.startswith("_") and inspect.isfunction(target):
                    found.append((f"{module.__name__}.{name}.{attr}", target))
    return found


MODULES = [statemachine, statemachine.replay, statemachine.testing, statemachine.operations,
           statemachine.importers]  # fmt: skip


@pytest.mark.parametrize("module", MODULES, ids=[m.__name__ for m in MODULES])
def test_every_public_name_has_a_docstring(module: ModuleType) -> None:
    assert [name for name, obj in _public(module) if not (obj.__doc__ or "").strip()] == []


def test_open_takes_a_retry_policy(tmp_path: object) -> None:
    from pathlib import Path

    from statemachine import Engine, RetryPolicy

    policy = RetryPolicy(max_deliveries=2)
    with Engine.open(Path(str(tmp_path)) / "d.sqlite", retry=policy) as engine:
        assert engine.retry is policy
    assert Engine.in_memory(retry=policy).retry is policy

"""Both backends honour the whole ``Storage`` Protocol, with the same signatures."""

from __future__ import annotations

import inspect

import pytest

from storage.base import Storage
from storage.postgres import PostgresStorage
from storage.sqlite import SQLiteStorage

MEMBERS = sorted(
    name
    for name, value in vars(Storage).items()
    if not name.startswith("_") and (callable(value) or isinstance(value, property))
)


@pytest.mark.parametrize("impl", [SQLiteStorage, PostgresStorage])
def test_every_protocol_member_is_implemented_with_the_same_signature(impl: type) -> None:
    assert len(MEMBERS) > 30
    for name in MEMBERS:
        expected = getattr(Storage, name)
        got = getattr(impl, name, None)
        assert got is not None, f"{impl.__name__} lacks {name}"
        if isinstance(expected, property):
            assert isinstance(got, property), name
            continue
        assert inspect.iscoroutinefunction(got) == inspect.iscoroutinefunction(expected), name
        want = [
            (p.name, p.kind, p.default) for p in inspect.signature(expected).parameters.values()
        ]
        have = [(p.name, p.kind, p.default) for p in inspect.signature(got).parameters.values()]
        assert have == want, f"{impl.__name__}.{name}: {have} != {want}"

"""The startup heap is taken out of the collector's full passes, and later garbage is still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from salesbot.kit.heap import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_objects_alive_at_startup_are_frozen_and_later_cycles_still_collected(unfrozen: None) -> None:
    startup_object = _Node()
    frozen = weakref.ref(startup_object)
    freeze_startup_heap()
    assert gc.get_freeze_count() > 0
    del startup_object
    gc.collect()
    assert frozen() is not None  # out of the collector's reach: full passes no longer walk it

    later = _Node()
    probe = weakref.ref(later)
    del later
    gc.collect()
    assert probe() is None

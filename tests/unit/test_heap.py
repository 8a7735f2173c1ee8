"""Full garbage collections stay short: what a background import makes is frozen."""

from __future__ import annotations

import gc
import threading

import pytest

from explorer.runtime import heap


@pytest.fixture
def freezing(monkeypatch):
    monkeypatch.setattr(heap, "_freezing", True)
    yield
    gc.unfreeze()  # the test process's heap goes back to the collector


def test_a_lazy_import_holds_full_collections_off_and_freezes_what_it_made(freezing):
    made: list = []
    inside = threading.Event()
    release = threading.Event()

    def background_import() -> None:
        with heap.lazy_import():
            made.extend({"module": i} for i in range(1000))  # long-lived containers, as a module's
            inside.set()
            release.wait(5)

    before = gc.get_freeze_count()
    thread = threading.Thread(target=background_import)
    thread.start()
    assert inside.wait(5)
    assert not heap.full_collection_allowed(), "a full pass would walk the half-imported modules"
    release.set()
    thread.join(5)
    assert heap.full_collection_allowed()
    assert gc.get_freeze_count() >= before + 1000, "what the import made is left out of later full passes"


def test_a_script_that_never_asked_is_not_frozen(monkeypatch):
    monkeypatch.setattr(heap, "_freezing", False)
    before = gc.get_freeze_count()
    with heap.lazy_import():
        _ = [{"x": i} for i in range(100)]
    assert gc.get_freeze_count() == before

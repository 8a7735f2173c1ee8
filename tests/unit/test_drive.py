"""explorer.training.engine.drive: the one loop that runs a training generator to its end."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from explorer.training.engine import drive, run_to_end
from explorer.training.events import Event, Notice, RunResult

RESULT = RunResult(status="completed", epochs_completed=2, global_step=7)


def events() -> Generator[Event, None, RunResult]:
    yield Notice("one")
    yield Notice("two")
    return RESULT


def test_drive_hands_over_every_event_and_returns_the_result() -> None:
    seen: list[Event] = []
    assert drive(events(), seen.append) is RESULT
    assert seen == [Notice("one"), Notice("two")]


def test_run_to_end_is_drive_with_a_list() -> None:
    assert run_to_end(events()) == ([Notice("one"), Notice("two")], RESULT)


def test_an_error_in_the_listener_stops_the_run_and_propagates() -> None:
    seen: list[Event] = []

    def listener(event: Event) -> None:
        seen.append(event)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drive(events(), listener)
    assert seen == [Notice("one")]


def test_an_error_in_the_run_propagates() -> None:
    def failing() -> Generator[Event, None, RunResult]:
        yield Notice("before")
        raise MemoryError

    with pytest.raises(MemoryError):
        drive(failing(), lambda event: None)

"""Subnormal floats are flushed to zero on every thread that trains a run (the caller and its
OpenMP team), and each thread is left as it was when the run ends.

Each test works in a fresh thread: OpenMP gives every thread that starts parallel work its
own team, so the team seen here is made by the test, two threads strong."""

from __future__ import annotations

import threading

import pytest
import torch

from explorer.config import TrainConfig
from explorer.data.dataset import ImageData
from explorer.models import PRESETS, build_model, config_for_data
from explorer.training.batched import train_together
from explorer.training.denormals import denormals_flushed, team_flushes
from explorer.training.engine import train
from explorer.training.events import EpochEnd, RunStarted

pytestmark = pytest.mark.skipif(not torch.set_flush_denormal(False), reason="x86 only: no subnormal flags")


def in_fresh_thread(work):
    """``work()`` in a new thread whose OpenMP team (two threads) exists before it starts."""
    box: dict[str, object] = {}

    def body() -> None:
        try:
            torch.set_num_threads(2)
            torch.randn(600, 600) @ torch.randn(600, 600)  # the team is made here, without the flags
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            box["error"] = exc

    before = torch.get_num_threads()
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    torch.set_num_threads(before)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]


def vae():
    torch.manual_seed(0)
    return build_model(config_for_data(PRESETS["vae"].model, (1, 28, 28), 10))


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(epochs=1, batch_size=100, lr=1e-3, seed=0, device="cpu", log_every=1,
                                 compile="off"), **kw})


def test_the_block_sets_the_whole_team_and_puts_it_back() -> None:
    def work():
        seen = [team_flushes()]
        with denormals_flushed():
            seen.append(team_flushes())
            # A subnormal product on a tensor large enough to be split over the team is zero.
            product = torch.full((1_000_000,), 1e-30) * 1e-10
            seen.append(bool((product == 0).all()))
        seen.append(team_flushes())
        return seen

    before, inside, product_zero, after = in_fresh_thread(work)
    assert before == [False, False]
    assert inside == [True, True]
    assert product_zero
    assert after == [False, False]


def test_a_thread_that_already_flushed_keeps_flushing_after_the_block() -> None:
    def work():
        torch.set_flush_denormal(True)  # the caller only; the other team member does not
        with denormals_flushed():
            pass
        return team_flushes()

    assert in_fresh_thread(work) == [True, False]


def test_a_run_trains_with_the_flags_set_and_leaves_them_as_they_were(mnist_300: ImageData) -> None:
    def work():
        seen = []
        for event in train(vae(), mnist_300, cfg()):
            if isinstance(event, (RunStarted, EpochEnd)):
                seen.append(team_flushes())
        seen.append(team_flushes())
        return seen

    *during, after = in_fresh_thread(work)
    assert during and all(flags == [True, True] for flags in during)
    assert after == [False, False]


def test_a_sweep_trained_together_sets_them_too(mnist_300: ImageData) -> None:
    def work():
        models = [vae(), vae()]
        events = train_together(models, mnist_300, [cfg(), cfg(seed=1)])
        seen = [team_flushes() for event in events if isinstance(event.event, EpochEnd)]
        seen.append(team_flushes())
        return seen

    *during, after = in_fresh_thread(work)
    assert len(during) == 2 and all(flags == [True, True] for flags in during)
    assert after == [False, False]

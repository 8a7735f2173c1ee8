"""The task runner, without Qt: latest request wins, stale results drop, failures arrive."""

from __future__ import annotations

import threading
import time

import pytest

from explorer.runtime.tasks import TaskRunner, Workers

_RUNNERS: list[TaskRunner] = []


def runner_closed_after_test() -> TaskRunner:
    """A runner whose kept threads end with the test (an idle one would wait for work)."""
    runner = TaskRunner()
    _RUNNERS.append(runner)
    return runner


@pytest.fixture(autouse=True)
def _shut_runners_down():
    yield
    while _RUNNERS:
        assert _RUNNERS.pop().shutdown(timeout_s=10)


def wait_idle(runner: TaskRunner, delivered: list, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not runner.idle:
        assert time.monotonic() < deadline, "the runner never went idle"
        runner.deliver(lambda label, message: delivered.append(("failed", label, message)))
        time.sleep(0.005)
    runner.deliver(lambda label, message: delivered.append(("failed", label, message)))


def test_a_newer_request_supersedes_the_running_one_and_the_waiting_one():
    runner = runner_closed_after_test()
    gate = threading.Event()
    got: list = []
    runner.submit("encode", lambda h: gate.wait(5) and "first", on_done=got.append)
    runner.submit("encode", lambda h: "second", on_done=got.append)  # waits, then is replaced
    runner.submit("encode", lambda h: "third", on_done=got.append)
    assert runner.is_busy("encode")
    gate.set()
    wait_idle(runner, got)
    assert got == ["third"], "only the newest request's result arrives; the middle one never ran"


def test_one_task_per_key_runs_at_a_time_but_keys_run_side_by_side():
    runner = runner_closed_after_test()
    both = threading.Barrier(2, timeout=5)
    got: list = []
    runner.submit("a", lambda h: both.wait() is not None and "a", on_done=got.append)
    runner.submit("b", lambda h: both.wait() is not None and "b", on_done=got.append)
    wait_idle(runner, got)
    assert sorted(got) == ["a", "b"]


def test_invalidate_drops_the_old_models_results_but_keeps_unbound_work():
    runner = runner_closed_after_test()
    gate = threading.Event()
    got: list = []
    seen_cancel: list = []

    def slow(handle):
        gate.wait(5)
        seen_cancel.append(handle.cancelled)
        return "old model"

    runner.submit("scores", slow, on_done=got.append)
    runner.submit("export", lambda h: gate.wait(5) and "file written", on_done=got.append, model_bound=False)
    runner.invalidate()
    gate.set()
    wait_idle(runner, got)
    assert got == ["file written"]
    assert seen_cancel == [True], "the old model's task could see that it was cancelled"
    runner.submit("scores", lambda h: "new model", on_done=got.append)
    wait_idle(runner, got)
    assert got[-1] == "new model"


def test_failures_go_to_their_handler_or_to_the_one_reporter():
    runner = runner_closed_after_test()
    events: list = []

    def boom(_):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")

    runner.submit("fit", boom, label="Fitting PCA")
    runner.submit("other", lambda _: 1 / 0, on_failed=lambda m: events.append(("own", m)))
    wait_idle(runner, events)
    reported = {e[0]: e for e in events}
    assert reported["failed"][1] == "Fitting PCA"
    assert "out of memory" in reported["failed"][2].lower() and "\n" not in reported["failed"][2]
    assert reported["own"][1].startswith("ZeroDivisionError")


def test_a_callback_that_raises_is_reported_and_the_rest_still_arrive():
    runner = runner_closed_after_test()
    events: list = []

    def bad(_value):
        raise ValueError("a view fell over")

    runner.submit("a", lambda _: 1, on_done=bad, label="View A")
    runner.submit("b", lambda _: 2, on_done=lambda v: events.append(("done", v)))
    wait_idle(runner, events)
    assert ("done", 2) in events
    assert any(e[0] == "failed" and e[1] == "View A" and "a view fell over" in e[2] for e in events)


def test_shutdown_joins_running_work_and_refuses_new_work():
    runner = runner_closed_after_test()
    started = threading.Event()

    def until_cancelled(handle):
        started.set()
        while not handle.cancelled:
            time.sleep(0.001)
        return "stopped"

    runner.submit("long", until_cancelled, label="Long work")
    assert started.wait(5)
    assert runner.busy_labels == ["Long work"]
    assert runner.shutdown(timeout_s=5)
    assert runner.submit("late", lambda _: 1) is None
    assert not [t for t in threading.enumerate() if t.name.startswith("latent-explorer-long")]


def test_work_in_batches_stops_at_the_next_batch_when_cancelled():
    import torch

    from explorer.analysis.latents import encode_images
    from explorer.cancellation import check
    from explorer.config import ModelConfig
    from explorer.models import Autoencoder

    check()  # outside a task it does nothing
    runner = runner_closed_after_test()
    model = Autoencoder(ModelConfig(preset="vae", latent_dim=2)).eval()
    images = torch.zeros((200_000, 1, 28, 28), dtype=torch.uint8)  # seconds of work in 200 batches
    started = time.monotonic()
    runner.submit("encode", lambda h: encode_images(model, images), on_done=lambda v: None)
    time.sleep(0.2)
    assert runner.shutdown(timeout_s=10)
    assert time.monotonic() - started < 2.0, "shutdown waited for the whole encode instead of one batch"


def test_a_finished_tasks_thread_runs_the_next_task_and_nobody_waits_to_start_one():
    runner = runner_closed_after_test()
    got: list = []
    runner.submit("a", lambda h: threading.get_ident(), on_done=got.append)
    wait_idle(runner, got)
    first_thread = runner.threads
    runner.submit("b", lambda h: threading.get_ident(), on_done=got.append)
    wait_idle(runner, got)
    assert first_thread == 1 and runner.threads == 1
    assert got[0] == got[1], "the second task ran on the thread the first one left idle"


def test_an_idle_worker_ends_on_its_own_and_all_of_them_at_close():
    workers = Workers("latent-explorer-test", idle_s=0.05)
    done = threading.Event()
    workers.run(done.set)
    assert done.wait(5)
    deadline = time.monotonic() + 10
    while workers.threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert workers.threads == 0, "an idle thread outlived its wait"

    lasting = Workers("latent-explorer-test", idle_s=60)
    gate = threading.Event()
    lasting.run(lambda: gate.wait(5))
    lasting.run(lambda: None)
    lasting.close()
    gate.set()
    assert lasting.join(5), "close ends idle threads at once and busy ones after their job"
    with pytest.raises(RuntimeError):
        lasting.run(lambda: None)

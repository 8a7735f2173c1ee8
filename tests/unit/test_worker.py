"""The Qt-free training worker: a run's events and result reach the outbox through the
shared driver, and out of memory arrives as advice, not a traceback."""

from __future__ import annotations

import pytest
import torch

from explorer.config import DataConfig, TrainConfig
from explorer.runtime.worker import DataReady, Failed, RunRequest, TrainingWorker, WorkerDone
from explorer.training.control import TrainingControl
from explorer.training.events import EpochEnd, RunResult
from explorer.training.runs import model_config_for

CPU_ALLOCATOR = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 80000000000 bytes."


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))


def run_worker(tmp_path, **train) -> list:
    request = RunRequest(model_config_for("ae"), DataConfig(dataset="mnist", limit=200),
                         TrainConfig(epochs=1, batch_size=100, device="cpu", **train), threads=1,
                         autosave_path=tmp_path / "autosave.safetensors")
    worker = TrainingWorker(request, TrainingControl())
    worker.start()
    worker.thread.join(timeout=120)
    items = []
    while not worker.outbox.empty():
        items.append(worker.outbox.get())
    return items


def test_a_run_ends_with_its_result_then_done(tmp_path) -> None:
    items = run_worker(tmp_path)
    assert isinstance(items[0], DataReady)
    assert any(isinstance(item, EpochEnd) for item in items)
    assert isinstance(items[-2], RunResult) and items[-2].status == "completed"
    assert isinstance(items[-1], WorkerDone)
    assert (tmp_path / "autosave.safetensors").exists(), "the last epoch is autosaved"


@pytest.mark.parametrize("exc, said", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
     "The device ran out of memory. Try a smaller batch size."),
    (RuntimeError(CPU_ALLOCATOR), "Out of memory. Try a smaller batch size or fewer training images."),
    (MemoryError(), "Out of memory. Try a smaller batch size or fewer training images."),
])
def test_out_of_memory_is_advice(tmp_path, monkeypatch, exc, said) -> None:
    import explorer.training.engine as engine

    def runs_out(*args, **kwargs):
        raise exc
        yield  # a generator, like the real one

    monkeypatch.setattr(engine, "train", runs_out)
    items = run_worker(tmp_path)
    failed = [item for item in items if isinstance(item, Failed)]
    assert [f.message for f in failed] == [said]
    assert isinstance(items[-1], WorkerDone)


def test_another_crash_names_itself(tmp_path, monkeypatch) -> None:
    import explorer.training.engine as engine

    def breaks(*args, **kwargs):
        raise KeyError("oops")
        yield

    monkeypatch.setattr(engine, "train", breaks)
    [failed] = [item for item in run_worker(tmp_path) if isinstance(item, Failed)]
    assert failed.message.startswith("Training failed: KeyError: 'oops'") and "Traceback" in failed.message

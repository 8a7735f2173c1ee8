"""explorer.oom: every form "out of memory" takes is recognised, and the advice fits it."""

from __future__ import annotations

import errno

import pytest
import torch

from explorer.oom import is_out_of_memory, out_of_memory_message

CPU_ALLOCATOR = ("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                 "you tried to allocate 80000000000 bytes. Error code 12 (Cannot allocate memory)")


@pytest.mark.parametrize("exc", [
    MemoryError(),
    RuntimeError(CPU_ALLOCATOR),
    OSError(errno.ENOMEM, "Cannot allocate memory"),
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"),
    RuntimeError("MPS backend out of memory (MPS allocated: 1.2 GB)"),
])
def test_out_of_memory_is_recognised_in_every_form(exc: BaseException) -> None:
    assert is_out_of_memory(exc)


@pytest.mark.parametrize("exc", [
    RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
    ValueError("out of memory"),  # not an allocator's error type
    OSError(errno.ENOSPC, "No space left on device"),
    KeyboardInterrupt(),
])
def test_other_errors_are_not_out_of_memory(exc: BaseException) -> None:
    assert not is_out_of_memory(exc)


def test_the_cli_wording_is_kept() -> None:
    knobs = ("a smaller --batch-size", "--limit")
    assert out_of_memory_message(MemoryError(), *knobs) == "out of memory; try a smaller --batch-size or --limit"
    assert out_of_memory_message(RuntimeError(CPU_ALLOCATOR), *knobs) == \
        "out of memory; try a smaller --batch-size or --limit"
    assert out_of_memory_message(torch.OutOfMemoryError("CUDA out of memory"), *knobs) == \
        "the device ran out of memory; try a smaller --batch-size"


def test_sentences_for_the_window() -> None:
    assert out_of_memory_message(MemoryError(), sentences=True) == \
        "Out of memory. Try a smaller batch size or fewer training images."
    assert out_of_memory_message(RuntimeError("CUDA out of memory"), sentences=True) == \
        "The device ran out of memory. Try a smaller batch size."


@pytest.mark.parametrize("exc, said", [
    (RuntimeError(CPU_ALLOCATOR), "error: out of memory; try --device cpu or a machine with more memory"),
    (MemoryError(), "error: out of memory; try --device cpu or a machine with more memory"),
    (torch.OutOfMemoryError("CUDA out of memory"), "error: the device ran out of memory; try --device cpu"),
])
def test_the_cli_says_so_in_one_line(monkeypatch, capsys, tmp_path, exc: BaseException, said: str) -> None:
    import explorer.cli as cli

    def runs_out(*args):
        raise exc

    monkeypatch.setattr(cli, "cmd_evaluate", runs_out)
    (tmp_path / "model.safetensors").write_bytes(b"")  # a file: the CLI checks the path before the command runs
    assert cli.main(["evaluate", str(tmp_path / "model.safetensors")]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err == f"latent-explorer: {said}\n"


def test_the_cli_still_raises_other_runtime_errors(monkeypatch, tmp_path) -> None:
    import explorer.cli as cli

    def breaks(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "cmd_evaluate", breaks)
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["evaluate", str(tmp_path / "model.safetensors")])

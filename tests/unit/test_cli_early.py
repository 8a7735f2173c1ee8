"""Names and paths are refused before torch is imported (issue #26): a wrong preset, a
checkpoint that is missing or not a regular file, an output in a missing folder or a dataset
that is not there ends in one line and exit 2 in milliseconds, not after the 2 s (14 s on a
busy machine) torch takes to load. And --image-size or --channels that a built-in dataset
would ignore is refused, not ignored.

Each case runs in a fresh interpreter, which reports whether torch was imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from cli_runner import assert_user_error, run  # tests/unit is on sys.path (pytest rootdir conftest)

from explorer.cli.common import ARRAY_SUFFIXES, BUILTIN_DATASETS
from explorer.errors import UserError

ROOT = Path(__file__).resolve().parents[2]

# Runs each argv through explorer.cli.main in this one interpreter and says, after each,
# whether torch (or numpy, or Qt) has been imported: once one is, every later case would
# pass, so the cases are checked one by one, in order.
PROBE = """
import contextlib, io, json, sys
from explorer.cli import main

results = []
for argv in json.loads(sys.argv[1]):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code
    heavy = sorted(m for m in ("torch", "numpy", "PySide6") if m in sys.modules)
    results.append({"rc": rc, "err": err.getvalue(), "out": out.getvalue(), "heavy": heavy})
print(json.dumps(results))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), LATENT_EXPLORER_CACHE=str(tmp_path / "cache"))
    env.pop("QT_QPA_PLATFORM", None)  # gui refuses its checkpoint before it looks for a display
    return env


def _probe(tmp_path: Path, argvs: list[list[str]]) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argvs)], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture()
def places(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "a-folder.safetensors").mkdir()
    (tmp_path / "pics").mkdir()
    (tmp_path / "notes.txt").write_text("not images")
    (tmp_path / "folder.npz").mkdir()
    fifo = tmp_path / "fifo.safetensors"
    if hasattr(os, "mkfifo"):
        os.mkfifo(fifo)
    (tmp_path / "dangling.safetensors").symlink_to(tmp_path / "gone.safetensors")
    (tmp_path / "plain.safetensors").write_bytes(b"not read before torch")  # a regular file: passes the check
    t = str(tmp_path)
    return {"missing": f"{t}/missing.safetensors", "folder": f"{t}/a-folder.safetensors", "fifo": str(fifo),
            "dangling": f"{t}/dangling.safetensors", "plain": f"{t}/plain.safetensors", "t": t}


def _cases(p: dict[str, str]) -> list[tuple[list[str], tuple[str, ...]]]:
    t, ck = p["t"], p["plain"]
    train = ["train", "--model", "ae"]
    cases = [
        # an unknown --model, in both commands that take one
        (["train", "--model", "nope", "--out", f"{t}/m.safetensors"], ("--model", "'nope'", "vae", "conv-cvae")),
        (["sweep", "--model", "nope", "--out-dir", f"{t}/sweep"], ("--model", "'nope'", "beta-vae")),
        # a checkpoint that is missing, a folder, a FIFO, a dangling link: every command that takes one
        *[([command, p["missing"], *extra], ("missing.safetensors", "does not exist")) for command, extra in (
            ("evaluate", []), ("generate", ["--out", f"{t}/s.png"]), ("generate", ["--folder", f"{t}/gen"]),
            ("anomaly", []), ("reconstruct", ["--out", f"{t}/r.npy"]), ("encode", ["--out", f"{t}/z.csv"]),
            ("timeline", ["--out", f"{t}/f.gif"]), ("export", ["--out", f"{t}/m.onnx"]),
            ("export", ["--out", f"{t}/m.html"]), ("gui", []))],
        (["evaluate", p["folder"]], ("a-folder.safetensors", "is a folder")),
        (["anomaly", p["dangling"]], ("dangling.safetensors", "broken link")),
        (["evaluate", ""], ("empty",)),
        (["evaluate", "bad\x00name"], ("NUL",)),
        # an output in a missing folder
        ([*train, "--out", f"{t}/nope/m.safetensors"], ("nope", "does not exist")),
        (["generate", ck, "--out", f"{t}/nope/s.npy"], ("nope", "does not exist")),
        (["reconstruct", ck, "--out", f"{t}/nope/r.png"], ("nope", "does not exist")),
        (["encode", ck, "--out", f"{t}/nope/z.npy"], ("nope", "does not exist")),
        (["timeline", ck, "--out", f"{t}/nope/f.mp4"], ("nope", "does not exist")),
        (["export", ck, "--out", f"{t}/nope/m.pt2"], ("nope", "does not exist")),
        (["export", ck, "--part", "decoder", "--out", f"{t}/nope/m.onnx"], ("nope", "does not exist")),
        (["sweep", "--out-dir", f"{t}/notes.txt"], ("notes.txt", "not a folder")),
        # names of outputs that cannot be what the command writes
        (["timeline", ck, "--out", f"{t}/f.txt"], ("f.txt", ".gif or .mp4")),
        (["export", ck, "--format", "onnx", "--out", f"{t}/m.pt2"], ("an onnx export", ".onnx")),
        (["reconstruct", ck, "--out", f"{t}/r.npy/"], ("folder",)),
        # a --dataset that is not there
        ([*train, "--dataset", f"{t}/no-pics", "--out", f"{t}/m.safetensors"], ("no-pics", "does not exist")),
        ([*train, "--dataset", "mnits", "--out", f"{t}/m.safetensors"], ("mnits", "not a built-in dataset",
                                                                          "mnist")),
        ([*train, "--dataset", f"{t}/gone.npz", "--out", f"{t}/m.safetensors"], ("gone.npz", "does not exist")),
        ([*train, "--dataset", f"{t}/folder.npz", "--out", f"{t}/m.safetensors"], ("folder.npz", "folder")),
        ([*train, "--dataset", f"{t}/notes.txt", "--out", f"{t}/m.safetensors"], ("notes.txt", "not a folder")),
        ([*train, "--dataset", " ", "--out", f"{t}/m.safetensors"], ("--dataset", "empty")),
        (["sweep", "--dataset", f"{t}/no-pics", "--out-dir", f"{t}/sweep"], ("no-pics", "does not exist")),
        (["evaluate", ck, "--dataset", f"{t}/no-pics"], ("no-pics", "does not exist")),
        # --image-size and --channels that a built-in dataset would ignore
        ([*train, "--image-size", "32", "--out", f"{t}/m.safetensors"],
         ("--image-size applies to image folders and NumPy files; mnist is 28x28",)),
        ([*train, "--dataset", "cifar10", "--image-size", "28", "--out", f"{t}/m.safetensors"],
         ("--image-size", "cifar10 is 32x32")),
        ([*train, "--dataset", "fashion-mnist", "--channels", "3", "--out", f"{t}/m.safetensors"],
         ("--channels applies to image folders and NumPy files", "fashion-mnist has 1 channel")),
    ]
    if hasattr(os, "mkfifo"):
        cases.append((["encode", p["fifo"], "--out", f"{t}/z.npy"], ("fifo.safetensors", "FIFO", "not a regular")))
    return cases


def test_names_and_paths_are_refused_in_one_line_before_torch_is_imported(places, tmp_path: Path) -> None:
    cases = _cases(places)
    before = sorted(os.listdir(tmp_path))
    results = _probe(tmp_path, [argv for argv, _ in cases])
    for (argv, words), result in zip(cases, results, strict=True):
        assert result["heavy"] == [], (argv, result)  # neither torch nor numpy nor Qt was imported
        assert result["out"] == "", (argv, result)
        assert_user_error(result["rc"], result["err"], *words)
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, nothing left behind


def test_the_entry_point_refuses_before_it_imports_torch(tmp_path: Path) -> None:
    """``python -m explorer`` imports torch while its start-up signal handlers are in place
    (explorer.cli.signals._import_while_starting): the checks come before that."""
    for argv in (["train", "--model", "nope", "--out", str(tmp_path / "m.safetensors")],
                 ["evaluate", str(tmp_path / "gone.safetensors")]):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "explorer", *argv], cwd=tmp_path,
                              env=_env(tmp_path), capture_output=True, text=True, timeout=120)
        imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                    if line.startswith("import time:")]
        said = "".join(line + "\n" for line in done.stderr.splitlines() if not line.startswith("import time:"))
        assert "explorer.cli" in imported
        assert not [m for m in imported if m.split(".")[0] in ("torch", "numpy")], imported
        assert_user_error(done.returncode, said, argv[-1].rsplit("/", 1)[-1] if argv[0] == "evaluate" else "nope")


def test_what_passes_the_checks_reaches_the_work(tmp_path: Path) -> None:
    """The checks refuse only what cannot work: a plugin's name, an existing folder or NumPy
    file, and the built-in size asked for get as far as loading the data."""
    def stop(*_a, **_kw):
        raise UserError("stopped before any data was loaded")

    pics = tmp_path / "pics"
    pics.mkdir()
    (tmp_path / "images.npy").write_bytes(b"")
    out = ["--out", tmp_path / "m.safetensors"]
    with mock.patch("explorer.api.training.prepare_run", stop):
        for argv in (["--image-size", "28"], ["--channels", "1"], ["--dataset", "cifar10", "--image-size", "32"],
                     ["--dataset", pics, "--image-size", "16", "--channels", "3"],
                     ["--dataset", tmp_path / "images.npy", "--image-size", "8"]):
            rc, _, err = run("train", "--model", "ae", *argv, *out)
            assert_user_error(rc, err, "stopped before any data was loaded")


def test_an_installed_model_plugin_passes_the_name_check() -> None:
    from explorer.cli.common import check_model

    with mock.patch("explorer.plugins.installed", return_value=[("my-plugin", "my-dist", "1.0")]):
        check_model("my-plugin")
        with pytest.raises(UserError, match="model plugins: my-plugin"):
            check_model("my-plugn")


def test_the_torch_free_lists_agree_with_the_modules_they_stand_for(bundled_mnist) -> None:
    from explorer.cli.export import _files
    from explorer.cli.timeline import FILM_SUFFIXES
    from explorer.data import BUILTIN
    from explorer.data.arrays import ARRAY_SUFFIXES as LOADER_SUFFIXES
    from explorer.export.common import targets
    from explorer.training.film import FILM_SUFFIXES as FILM_MODULE_SUFFIXES

    assert tuple(BUILTIN_DATASETS) == BUILTIN
    assert BUILTIN_DATASETS["mnist"] == bundled_mnist.image_shape
    assert ARRAY_SUFFIXES == LOADER_SUFFIXES
    assert FILM_SUFFIXES == FILM_MODULE_SUFFIXES
    for out, fmt, part in (("d/m.onnx", "onnx", "both"), ("m.pt2", "pt2", "encoder"), ("d/p.HTM", "web", "decoder"),
                           ("x.y.pt2", "pt2", "both")):
        suffix = ".htm" if out.lower().endswith(".htm") else {"onnx": ".onnx", "pt2": ".pt2", "web": ".html"}[fmt]
        assert _files(out, fmt, part) == [path for _, path in targets(out, part, suffix)]


@pytest.mark.parametrize("rank", ["0", "1"])
def test_under_torchrun_rank_0_alone_says_what_is_wrong(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        rank: str) -> None:
    for name, value in (("RANK", rank), ("WORLD_SIZE", "2"), ("LOCAL_RANK", rank), ("MASTER_ADDR", "127.0.0.1"),
                        ("MASTER_PORT", "29500")):
        monkeypatch.setenv(name, value)
    rc, out, err = run("train", "--model", "nope", "--out", tmp_path / "m.safetensors")
    if rank == "0":
        assert_user_error(rc, err, "nope")
    else:
        assert (rc, out, err) == (2, "", "")

"""Hypothesis fuzzes the CLI's arguments: random argv lists for every subcommand end with
exit status 0 or 2 and at most one line on stderr, never a traceback.

No training or loading happens: ``prepare_run`` (and the sweep's ``load_dataset``) is
replaced by a one-line refusal, the checkpoint argument names a missing file, a folder or a
junk file, and every output path lies in a private folder. Known limits are refused with the limit, not with nonsense
(a batch of 10**9 is "too large", not "must be a positive whole number").
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from cli_runner import run  # tests/unit is on sys.path (pytest rootdir conftest)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.cli import build_parser
from explorer.errors import UserError

# Every command but gui (it opens the window).
COMMANDS = ("train", "evaluate", "generate", "anomaly", "reconstruct", "encode", "export", "plugins", "timeline",
            "sweep")
NEEDS_CHECKPOINT = set(COMMANDS) - {"train", "plugins", "sweep"}

# Values that broke or may break parsing: huge, negative, not finite, empty, control characters.
AWKWARD = ["99999999999999999999999", "1000000000", "2147483648", "2147483647", "65537", "0", "-1", "-0", "+5",
           "1e308", "1e-320", "nan", "inf", "-inf", "3.5", "", " ", ",", "1,2", "0,0,0", "1," * 5, "abc", "--",
           "-", "-5e3", "\n", "\x1b[31m", "\x00", "٣", "9" * 5000, "1_000", "0x10", "∞"]


def _options(command: str) -> dict[str, argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {o: action for action in sub.choices[command]._actions for o in action.option_strings
            if o not in ("-h", "--help")}  # --help: exit 0 with text on stdout, not worth the examples


OPTIONS = {command: _options(command) for command in COMMANDS}
FOLDER = Path(tempfile.mkdtemp(prefix="latent-explorer-cli-fuzz-"))
(FOLDER / "junk.safetensors").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
(FOLDER / "a-folder.safetensors").mkdir(exist_ok=True)
CHECKPOINTS = [str(FOLDER / "missing.safetensors"), str(FOLDER / "junk.safetensors"),
               str(FOLDER / "a-folder.safetensors")]
OUT_NAMES = ["m.safetensors", "s.npy", "s.png", "z.csv", "x.jpg", "a-folder.safetensors", "", "junk.safetensors/x.npy",
             "nope/s.npy", "gen", "a\nb.npy", "\x00.npy", "m.onnx", "m.pt2", "m.html", "m.htm", "nope/m.onnx", ".onnx",
             "s.npy/", "f.gif", "f.mp4", "sweep-out"]

awkward = st.one_of(st.sampled_from(AWKWARD), st.integers(-(10**25), 10**25).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=10))
plausible = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["0.5", "1e-3", "1,2", "512,256", "mnist"]))
paths = st.sampled_from(OUT_NAMES).map(lambda name: str(FOLDER / name))


def _value(draw, action: argparse.Action) -> str:
    if action.choices and draw(st.integers(0, 3)) > 0:
        return str(draw(st.sampled_from(list(action.choices))))
    return draw(st.one_of(awkward, plausible))


@st.composite
def argvs(draw, command: str) -> list[str]:
    argv = [command]
    if command in NEEDS_CHECKPOINT:
        argv.append(draw(st.sampled_from(CHECKPOINTS)))
    options = OPTIONS[command]
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 19)) == 0:
            argv.append(draw(st.sampled_from(["--bogus", "-x", "--out=", "--se"])))  # unknown, ambiguous
            continue
        option = draw(st.sampled_from(sorted(options)))
        action = options[option]
        argv.append(option)
        if action.nargs == 0:
            continue
        if option in ("--out", "--folder", "--out-dir"):
            argv.append(draw(paths))
        elif draw(st.integers(0, 19)) > 0:  # now and then a missing value
            argv.append(_value(draw, action))
    if command in ("train", "reconstruct", "encode", "export", "timeline") and draw(st.booleans()):
        argv += ["--out", draw(paths)]
    if command == "sweep" and draw(st.booleans()):
        argv += ["--out-dir", draw(paths)]
    if command == "generate" and draw(st.booleans()):
        argv += [draw(st.sampled_from(["--out", "--folder"])), draw(paths)]
    if draw(st.integers(0, 9)) == 0:
        argv.append(draw(awkward))  # a stray positional
    return argv


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    shutil.rmtree(FOLDER, ignore_errors=True)


def _stop(*_a, **_kw):
    raise UserError("stopped before any data was loaded (fuzz test)")


def check(argv: list[str]) -> None:
    # The one path of train (the API's TrainingRun), and the sweep's data.
    with mock.patch("explorer.api.training.prepare_run", _stop), \
            mock.patch("explorer.training.sweep.load_dataset", _stop):
        rc, stdout, err = run(*argv)
    assert "Traceback" not in err, (argv, err)
    assert rc in (0, 2), (argv, rc, err)
    # A sweep says what it is about to train before its data is loaded (and refused here).
    err = "".join(line for line in err.splitlines(keepends=True) if not line.startswith("sweep of "))
    assert len(err.splitlines()) <= 1, (argv, err)
    if rc == 2:
        assert err.strip(), argv
        assert "\x1b" not in err and "\x00" not in err, (argv, err)


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                database=None, derandomize=True)


@pytest.mark.parametrize("command", COMMANDS)
def test_random_arguments_end_in_status_0_or_2_with_at_most_one_line(command: str) -> None:
    @FUZZ
    @given(argvs(command))
    def fuzz(argv: list[str]) -> None:
        check(argv)

    fuzz()


def test_the_fuzz_covers_every_command_but_the_window() -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) - {"gui"} == set(COMMANDS)


@pytest.mark.parametrize("argv,words", [
    (["train", "--seed", "99999999999999999999999"], ("--seed", "too large", "2,147,483,647")),
    (["train", "--batch-size", "1000000000"], ("--batch-size", "too large", "1,000,000")),
    (["train", "--epochs", "100001"], ("--epochs", "too large", "100,000")),
    (["train", "--latent-dim", "1" + "0" * 40], ("--latent-dim", "too large")),
    (["train", "--hidden", "512,99999999999"], ("--hidden", "too large", "65,536")),
    (["train", "--hidden", ",".join(["8"] * 1001)], ("--hidden", "too many")),
    (["train", "--limit", "9" * 5000], ("--limit", "too large")),
    (["train", "--image-size", "2"], ("--image-size", "at least 4")),
    (["train", "--seed", "-1"], ("--seed", "at least 0")),
    (["train", "--lr", "1e300"], ("--lr", "too large", "below 10")),
    (["train", "--beta", "inf"], ("--beta", "not a finite number")),
    (["train", "--noise-level", "11"], ("--noise-level", "at most 10")),
    (["generate", "c.safetensors", "--seed", "99999999999999999999999"], ("--seed", "too large")),
    (["generate", "c.safetensors", "--n", "1000000000"], ("--n", "too large", "1,000,000")),
    (["reconstruct", "c.safetensors", "--n", "0"], ("--n", "at least 1")),
])
def test_huge_and_out_of_range_numbers_are_refused_with_the_limit(argv: list[str], words: tuple[str, ...]) -> None:
    out = ["--out", str(FOLDER / ("m.safetensors" if argv[0] == "train" else "s.npy"))]
    rc, stdout, err = run(*argv, *out)
    assert rc == 2 and stdout == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], err
    assert "positive whole number" not in lines[0]


def test_a_valid_command_line_reaches_the_work(tmp_path: Path) -> None:
    """The fuzz's refusals are not all argparse's: a good train command line gets as far as loading data."""
    with mock.patch("explorer.api.training.prepare_run", _stop):  # the one path: the API's TrainingRun
        rc, _, err = run("train", "--model", "ae", "--seed", "2147483647", "--batch-size", "1000000",
                         "--out", tmp_path / "m.safetensors")
    assert rc == 2 and "stopped before any data was loaded" in err

"""Every argument of every command has help, and the CLI's messages are in good English: "an
onnx export", "1 epoch", "2 checkpoints", never "epoch(s)" (issue #26)."""

from __future__ import annotations

import argparse
import io
import re
import tokenize
from pathlib import Path

import pytest
from cli_runner import run  # tests/unit is on sys.path (pytest rootdir conftest)

from explorer.cli import build_parser

CLI = Path(__file__).resolve().parents[2] / "explorer" / "cli"


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"(no command)": parser, **sub.choices}


def test_every_argument_of_every_command_has_help() -> None:
    missing = []
    for name, parser in _commands().items():
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_every_command_has_a_one_line_summary_in_the_list() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {c.dest for c in sub._choices_actions if (c.help or "").strip()} == set(sub.choices)


@pytest.mark.parametrize("command", sorted(set(_commands()) - {"(no command)"}))
def test_each_command_help_shows_every_argument_with_its_text(command: str) -> None:
    rc, out, _ = run(command, "--help")
    assert rc == 0
    for action in _commands()[command]._actions:
        if action.help and not isinstance(action, argparse._HelpAction):
            assert " ".join(action.help.split()[:3]).replace("%%", "%") in " ".join(out.split()), (command, action)


def _strings(path: Path) -> list[tuple[int, str]]:
    """The text of every string literal (f-strings included, their fields as written) in ``path``."""
    found = []
    with path.open("rb") as fh:
        for token in tokenize.tokenize(fh.readline):
            if token.type == tokenize.STRING or token.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
                found.append((token.start[0], token.string))
            elif token.type == getattr(tokenize, "FSTRING_START", -1):
                found.append((token.start[0], token.string))
    return found


def _source_strings() -> list[tuple[str, int, str]]:
    return [(path.name, line, text) for path in sorted(CLI.glob("*.py")) for line, text in _strings(path)]


def test_no_message_counts_with_an_s_in_brackets() -> None:
    """'1 epoch(s)', 'group(s)': explorer.display.plural makes the count and the noun agree."""
    bad = [(name, line, text) for name, line, text in _source_strings() if re.search(r"[A-Za-z]\((s|es)\)", text)]
    assert bad == []


def test_no_message_puts_a_fixed_article_before_a_value() -> None:
    """'a {fmt} export' said 'a onnx export': explorer.display.with_article picks a or an."""
    source = "\n".join(path.read_text(encoding="utf-8") for path in sorted(CLI.glob("*.py")))
    assert re.findall(r"""["' ](?:[Aa]n?) \{""", source) == []


def test_the_tokenizer_scan_sees_f_strings() -> None:
    """The scan above is worth something only if f-strings' text reaches it."""
    text = 'x = f"{n} epoch(s)"\n'
    tokens = [t.string for t in tokenize.tokenize(io.BytesIO(text.encode()).readline)]
    assert any("epoch(s)" in t for t in tokens)


def test_sweep_messages_agree_with_their_counts(tmp_path: Path) -> None:
    from explorer.cli.sweep import _finished, _sweep_kept
    from explorer.training.sweep import SweepReport

    assert _finished(0, 1) == "0 of 1 run is finished"
    assert _finished(1, 4) == "1 of 4 runs are finished"
    one = SweepReport(out_dir=tmp_path, written=("a.safetensors", "b.interrupted.safetensors", "summary.csv"),
                      finished_now=("a",), interrupted_now=("b",), finished=1, runs=2, rows=())
    line = _sweep_kept(one)
    assert "1 finished checkpoint (a)" in line and "1 interrupted run saved" in line, line
    assert "1 of 2 runs are finished" in line and "trains the other 1" in line, line
    earlier = SweepReport(out_dir=tmp_path, written=(), finished_now=(), interrupted_now=(), finished=1, runs=1,
                          rows=())
    assert "holds the 1 run finished earlier" in _sweep_kept(earlier)


def test_a_one_step_run_says_one_training_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    rc, _, err = run("train", "--model", "ae", "--limit", 100, "--epochs", 1, "--device", "cpu", "--no-timeline",
                     "--out", tmp_path / "ae.safetensors")
    assert rc == 0, err
    short = [line for line in err.splitlines() if "too few" in line]
    assert len(short) == 1 and "took only 1 training step," in short[0], err


def test_the_model_messages_take_the_right_article() -> None:
    import torch

    from explorer.models.contract import ContractError, _tensor

    with pytest.raises(ContractError, match=r"the code is an int, not a tensor"):
        _tensor(3, (2, 2), "the code")
    with pytest.raises(ContractError, match=r"the code is a list, not a tensor"):
        _tensor([torch.zeros(1)], (2, 2), "the code")

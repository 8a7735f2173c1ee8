"""The cost-growth and window-evaluation benchmarks still run (on tiny settings) and report
what their tables claim to: timings are not checked, only that each figure is there and
sane."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.test_benchmarks_run import run


def test_cost_growth_measures_each_case_in_its_own_process(tmp_path: Path) -> None:
    out = json.loads(run("cost_growth.py", "--presets", "vae", "--factors", "batch", "--steps", "10",
                         "--warmup", "10", "--compile", "off", "--json", tmp_path=tmp_path))
    rows = out["rows"]
    assert [r["batch"] for r in rows] == [32, 128, 512]
    assert all(r["latent"] == 20 and r["size"] == 28 and r["channels"] == 1 for r in rows)
    assert all(r["samples_per_s"] > 0 and r["peak_rss_mib"] > r["data_mib"] > 0 for r in rows)
    assert not any(r["compiled"] for r in rows)


def test_evaluation_window_times_the_window_against_the_cli(tmp_path: Path) -> None:
    out = json.loads(run("evaluation_window.py", "--train-limit", "300", "--groups", "loss,recon",
                         "--repeats", "1", "--json", tmp_path=tmp_path, timeout=400))
    assert out["groups"] == ["loss", "recon"]
    assert len(out["cli_s"]) == len(out["window_s"]) == 1
    assert out["cli_s"][0] > 0 and out["window_s"][0] > 0 and out["ratio_best"] > 0

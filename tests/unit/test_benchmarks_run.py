"""The benchmark scripts still run (on tiny settings): their figures are only worth
something if the scripts work when someone reaches for them. Timings are not checked
here; each script prints them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(script: str, *args: str, tmp_path: Path, timeout: float = 240) -> str:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "LATENT_EXPLORER_DATA": str(tmp_path / "data"), "LATENT_EXPLORER_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "benchmarks").glob("*.py")))
def test_every_benchmark_explains_itself(script: str, tmp_path: Path) -> None:
    assert "usage:" in run(script, "--help", tmp_path=tmp_path)


def test_throughput_compares_presets_and_compile_modes_in_one_run(tmp_path: Path) -> None:
    out = json.loads(run("train_throughput.py", "--device", "cpu", "--limit", "512", "--repeats", "1",
                         "--preset", "ae,vae", "--compile", "off", "--epochs", "2", "--no-warmup",
                         "--wait-quiet", "0", "--json", tmp_path=tmp_path))
    assert [p["preset"] for p in out["projects"]] == ["ae", "vae"]
    for project in out["projects"]:
        assert project["samples_per_s"] > 0 and project["ratio_project_over_reference"] > 0
        assert project["steady_samples_per_s"] > 0 and project["compiled"] is False


def test_throughput_against_a_plain_loop_of_the_presets_own_architecture(tmp_path: Path) -> None:
    out = json.loads(run("train_throughput.py", "--device", "cpu", "--limit", "256", "--repeats", "1",
                         "--preset", "conv-cvae", "--reference", "plain", "--no-warmup", "--wait-quiet", "0",
                         "--json", tmp_path=tmp_path))
    assert "plain PyTorch loop of conv-cvae" in out["reference"]["name"]
    assert out["reference"]["samples_per_s"] > 0 and out["projects"][0]["ratio_project_over_reference"] > 0


def test_gui_lag_measures_a_training_window_with_every_dock_painted(tmp_path: Path) -> None:
    out = json.loads(run("gui_lag.py", "--seconds", "1", "--idle-seconds", "0.5", "--limit", "300",
                         "--preset", "vae", "--latent-dim", "20", "--epochs", "50", "--offscreen", "--json",
                         tmp_path=tmp_path))
    idle, training = out["results"]
    assert idle["case"] == "idle window" and training["case"] == "training vae 20-D"
    for case in (idle, training):
        assert case["ticks"] > 0 and 0 <= case["median_ms"] <= case["p99_ms"] <= case["max_ms"]
    assert training["samples_per_s"] > 0 and training["steps"] > 0
    assert (out["preset"], out["latent_dim"], out["manifold"]) == ("vae", 20, True)
    assert len(out["docks"]) >= 8
    assert all(d["visible"] and not d["tabbed"] and d["width"] > 0 and d["height"] > 0 for d in out["docks"])


def test_gui_lag_refuses_an_unknown_preset(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gui_lag.py"), "--preset", "gan", "--offscreen"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--preset must be one of" in proc.stderr


def test_startup_traces_the_real_app(tmp_path: Path) -> None:
    out = json.loads(run("startup.py", "--runs", "1", "--platform", "offscreen", "--json", tmp_path=tmp_path))
    app = out["median"]["app"]
    assert 0 < app["first_paint"] < app["window_shown"] <= app["ready"]


def test_likelihood_benchmark_times_the_estimate_against_the_reference(tmp_path: Path) -> None:
    checkpoint = tmp_path / "vae.safetensors"
    env = {**os.environ, "LATENT_EXPLORER_CACHE": str(tmp_path / "cache")}
    subprocess.run([sys.executable, "-m", "explorer", "train", "--model", "vae", "--epochs", "1", "--limit", "200",
                    "--binarize", "dynamic", "--out", str(checkpoint)], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=240)
    out = json.loads(run("likelihood.py", str(checkpoint), "--k", "1,20", "--reference-images", "5", "--json",
                         tmp_path=tmp_path))
    rows = {row["k"]: row for row in out["rows"]}
    assert set(rows) == {1, 20} and rows[20]["images"] == 200
    assert rows[20]["iw_nll"] < rows[1]["iw_nll"]  # more samples, a tighter estimate
    assert all(row["speedup_vs_reference"] > 0 and row["seconds"] > 0 for row in rows.values())


def test_latent_map_benchmark_fits_both_maps_and_measures_every_inverse(tmp_path: Path) -> None:
    out = json.loads(run("latent_map.py", "--quick", "--dims", "6", "--json", tmp_path=tmp_path))
    (result,) = out["results"]
    assert result["latent_dim"] == 6 and out["quick"] is True
    for method in ("pca", "umap"):
        fit = result["fit"][method]
        assert fit["fresh_s"] > 0 and fit["fresh_import_s"] > 0 and fit["warm_s"] > 0
    assert all(0 <= result["separation"][k] <= 1 for k in ("pca", "umap", "codes"))
    rows = {row["inverse"].split(" (")[0]: row for row in result["inverse"]}
    assert {"pca", "umap: nearest code", "umap: 8-neighbour blend", "umap: fit_map's inverse", "umap: MLP 2->6",
            "mean code"} <= set(rows)
    assert all(row["code_error_median"] >= 0 and row["pixel_mse"] >= 0 for row in rows.values())
    drag = result["drag"]
    assert drag["points"] > 0 and 0 < drag["median_ms"] <= drag["p95_ms"] <= drag["max_ms"]


def test_view_refresh_times_each_picture_view_against_its_work_done_inline(tmp_path: Path) -> None:
    out = json.loads(run("view_refresh.py", "--repeats", "2", "--json", tmp_path=tmp_path))
    assert out["model"].startswith("conv-vae (3, 64, 64)")
    assert set(out["views"]) == {"reconstructions", "samples", "interpolation", "traversal"}
    for figures in out["views"].values():
        assert 0 < figures["asking_ms"] <= figures["gui_thread_ms"] and figures["reference_gui_thread_ms"] > 0
        assert figures["to_picture_ms"] >= figures["asking_ms"]

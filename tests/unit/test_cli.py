"""The command line (DESIGN.md section 5), run in-process through ``explorer.cli.main``,
plus one run each of the ``latent-explorer`` console script and ``python -m explorer``."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import assert_usage_error, assert_user_error, run  # tests/unit is on sys.path (pytest rootdir conftest)
from PIL import Image

from explorer import __version__
from explorer.data.dataset import ImageData
from explorer.models.autoencoder import Autoencoder
from explorer.models.registry import PRESETS
from explorer.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("cli_module_env")  # private cache, one torch thread


def strict_json(line: str):
    def refuse(name: str):
        raise ValueError(f"{name} is not JSON")

    return json.loads(line, parse_constant=refuse)


def train_args(model: str, out: Path, *extra: object) -> list[object]:
    return ["train", "--model", model, "--limit", 300, "--epochs", 1, "--device", "cpu", "--json",
            "--out", out, *extra]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int, str, str]]:
    """One tiny trained checkpoint per preset the tests need: name -> (path, rc, stdout, stderr)."""
    folder = tmp_path_factory.mktemp("cli-runs")
    done = {}
    for model, extra in (("vae", ()), ("ae", ("--epochs", 2)), ("cvae", ())):
        path = folder / f"{model}.safetensors"
        done[model] = (path, *run(*train_args(model, path, *extra)))
    return done


def ckpt(runs, model: str) -> Path:
    path, rc, _, err = runs[model]
    assert rc == 0, err
    return path


# -- train --------------------------------------------------------------------------------


def test_train_json_prints_one_object_per_epoch_and_saves(runs) -> None:
    path, rc, out, err = runs["vae"]
    assert rc == 0, err
    assert "Traceback" not in err and "error" not in err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    record = strict_json(lines[0])
    assert {"epoch", "train_loss", "test_loss", "samples_per_s", "seconds"} <= set(record)
    assert record["epoch"] == 1
    for key in ("train_loss", "test_loss", "samples_per_s", "seconds", "test_kl", "test_recon"):
        assert isinstance(record[key], float) and math.isfinite(record[key]) and record[key] > 0, key
    assert record["test_loss"] == pytest.approx(record["test_recon"] + record["test_kl"], rel=1e-5)
    # a VAE this small starts near 544 nats (784 * ln 2); one epoch must have learned something
    assert record["test_loss"] < 540

    saved = load_checkpoint(path)
    assert saved.model_config.preset == "vae"
    assert saved.data_config.limit == 300 and saved.data_config.dataset == "mnist"
    assert saved.train_config.epochs == 1
    assert saved.history.last_epoch == 1
    assert saved.class_names == tuple(str(d) for d in range(10))


def test_train_json_has_one_line_per_epoch(runs) -> None:
    _, rc, out, err = runs["ae"]
    assert rc == 0, err
    records = [strict_json(line) for line in out.strip().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all("train_kl" not in r and "test_kl" not in r for r in records)
    assert records[1]["train_loss"] < records[0]["train_loss"]


def test_train_without_json_prints_readable_lines(tmp_path: Path) -> None:
    out_path = tmp_path / "ae.safetensors"
    rc, out, err = run("train", "--model", "ae", "--limit", 100, "--epochs", 1, "--device", "cpu",
                       "--out", out_path)
    assert rc == 0, err
    assert out.startswith("epoch 1/1  train ") and " test " in out and "samples/s" in out
    with pytest.raises(ValueError):
        json.loads(out)
    assert "training ae on mnist (100 train / 100 test images)" in err
    assert f"saved {out_path}" in err
    assert out_path.exists()


# -- evaluate ----------------------------------------------------------------------------


def test_evaluate_json_is_one_object_and_deterministic(runs) -> None:
    path = ckpt(runs, "vae")
    train_record = json.loads(runs["vae"][2])
    rc, out, err = run("evaluate", path, "--json", "--device", "cpu")
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    report = strict_json(lines[0])
    assert report["model"] == "vae" and report["dataset"] == "mnist"
    assert report["test_images"] == 300 and report["epochs"] == 1 and report["latent_dim"] == 20
    assert report["test_loss"] == pytest.approx(report["recon"] + report["kl"], rel=1e-5)
    assert report["kl"] > 0
    # the same number training reported for its test split: same weights, same seeded sample
    assert report["test_loss"] == pytest.approx(train_record["test_loss"], rel=1e-5)
    again = strict_json(run("evaluate", path, "--json", "--device", "cpu")[1])
    assert again["test_loss"] == report["test_loss"]


def test_evaluate_a_plain_autoencoder_has_no_kl(runs) -> None:
    rc, out, err = run("evaluate", ckpt(runs, "ae"), "--json")
    assert rc == 0, err
    report = strict_json(out)
    assert report["model"] == "ae"
    assert "kl" not in report
    assert report["test_loss"] == pytest.approx(report["recon"], rel=1e-6)
    assert report["epochs"] == 2


def test_evaluate_without_json_prints_a_table(runs) -> None:
    rc, out, err = run("evaluate", ckpt(runs, "ae"))
    assert rc == 0, err
    rows = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert rows["model"] == "ae" and rows["dataset"] == "mnist"
    assert float(rows["test_loss"]) > 0


# -- generate -----------------------------------------------------------------------------


def test_generate_npy_is_float32_images_in_unit_range(runs, tmp_path: Path) -> None:
    path = ckpt(runs, "vae")
    rc, _, err = run("generate", path, "--n", 8, "--out", tmp_path / "a.npy")
    assert rc == 0, err
    a = np.load(tmp_path / "a.npy", allow_pickle=False)
    assert a.dtype == np.float32 and a.shape == (8, 1, 28, 28)
    assert a.min() >= 0 and a.max() <= 1
    assert a.std() > 0.01  # not a blank canvas
    run("generate", path, "--n", 8, "--out", tmp_path / "b.npy")
    run("generate", path, "--n", 8, "--seed", 1, "--out", tmp_path / "c.npy")
    assert np.array_equal(a, np.load(tmp_path / "b.npy"))  # the default seed is fixed
    assert not np.array_equal(a, np.load(tmp_path / "c.npy"))


def test_generate_png_is_a_readable_grid(runs, tmp_path: Path) -> None:
    rc, _, err = run("generate", ckpt(runs, "vae"), "--n", 8, "--out", tmp_path / "g.png")
    assert rc == 0, err
    with Image.open(tmp_path / "g.png") as img:
        assert img.format == "PNG"
        img.load()
        # 8 images -> 3 per row, 3 rows of 28 px with 2 px padding
        assert img.size == (3 * 30 + 2, 3 * 30 + 2)
        pixels = np.asarray(img.convert("L"))
    assert pixels.min() < pixels.max()


def test_generate_from_a_conditional_model_with_a_label(runs, tmp_path: Path) -> None:
    path = ckpt(runs, "cvae")
    rc, _, err = run("generate", path, "--n", 4, "--label", 3, "--out", tmp_path / "three.npy")
    assert rc == 0, err
    three = np.load(tmp_path / "three.npy")
    assert three.shape == (4, 1, 28, 28) and three.dtype == np.float32
    assert three.min() >= 0 and three.max() <= 1
    assert run("generate", path, "--n", 4, "--label", 7, "--out", tmp_path / "seven.npy")[0] == 0
    assert not np.allclose(three, np.load(tmp_path / "seven.npy"))  # the label reaches the decoder
    rc, _, err = run("generate", path, "--n", 10, "--out", tmp_path / "all.npy")  # one of each class
    assert rc == 0, err
    assert np.load(tmp_path / "all.npy").shape == (10, 1, 28, 28)


@pytest.mark.parametrize("label", [12, 10, -1])
def test_generate_with_a_label_the_model_does_not_know_is_an_error(runs, tmp_path: Path, label: int) -> None:
    out = tmp_path / "x.npy"
    rc, _, err = run("generate", ckpt(runs, "cvae"), "--label", label, "--out", out)
    assert_user_error(rc, err, f"not {label}", "0 to 9")
    assert not out.exists()


def test_generate_with_a_label_on_an_unconditional_model_is_an_error(runs, tmp_path: Path) -> None:
    out = tmp_path / "x.npy"
    rc, _, err = run("generate", ckpt(runs, "vae"), "--label", 3, "--out", out)
    assert_user_error(rc, err, "--label", "no classes")
    assert not out.exists()


def test_generate_from_a_plain_autoencoder_is_an_error(runs, tmp_path: Path) -> None:
    out = tmp_path / "x.png"
    rc, _, err = run("generate", ckpt(runs, "ae"), "--out", out)
    assert_user_error(rc, err, "no prior to sample from")
    assert not out.exists()


# -- reconstruct and encode ----------------------------------------------------------------


def test_reconstruct_npy_and_png(runs, tmp_path: Path) -> None:
    path = ckpt(runs, "cvae")
    rc, _, err = run("reconstruct", path, "--n", 5, "--out", tmp_path / "r.npy")
    assert rc == 0, err
    r = np.load(tmp_path / "r.npy")
    assert r.dtype == np.float32 and r.shape == (5, 1, 28, 28)
    assert r.min() >= 0 and r.max() <= 1 and r.std() > 0.01
    rc, _, err = run("reconstruct", path, "--n", 5, "--out", tmp_path / "r.png")
    assert rc == 0, err
    with Image.open(tmp_path / "r.png") as img:
        assert img.format == "PNG"
        assert img.size == (5 * 30 + 2, 2 * 30 + 2)  # originals over reconstructions
    rc, _, err = run("reconstruct", path, "--n", 1000, "--out", tmp_path / "all.npy")
    assert rc == 0, err
    assert np.load(tmp_path / "all.npy").shape == (300, 1, 28, 28)  # only 300 test images


def test_encode_npy_and_csv(runs, tmp_path: Path, bundled_mnist: ImageData) -> None:
    path = ckpt(runs, "vae")
    rc, _, err = run("encode", path, "--split", "test", "--out", tmp_path / "z.npy")
    assert rc == 0, err
    z = np.load(tmp_path / "z.npy")
    assert z.dtype == np.float32 and z.shape == (300, 20)
    assert np.isfinite(z).all() and z.std() > 0
    rc, _, err = run("encode", path, "--out", tmp_path / "z.csv")  # test is the default split
    assert rc == 0, err
    with open(tmp_path / "z.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["label"] + [f"z{i}" for i in range(20)]
    assert len(rows) == 301
    assert [int(r[0]) for r in rows[1:]] == bundled_mnist.test_labels[:300].tolist()
    assert np.allclose(np.array([[float(v) for v in r[1:]] for r in rows[1:]]), z, rtol=1e-4, atol=1e-5)
    rc, _, err = run("encode", path, "--split", "train", "--out", tmp_path / "t.npy")
    assert rc == 0, err
    t = np.load(tmp_path / "t.npy")
    assert t.shape == (300, 20) and not np.allclose(t, z)


# -- user errors ---------------------------------------------------------------------------


def test_an_unknown_preset_names_the_valid_ones(tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    rc, _, err = run("train", "--model", "nope", "--out", out)
    line = assert_user_error(rc, err, "nope")
    assert all(name in line for name in PRESETS)
    assert not out.exists()


@pytest.mark.parametrize("case", [
    "missing-checkpoint", "not-a-checkpoint", "bad-output-suffix", "bad-train-suffix", "missing-output-folder",
    "missing-train-folder", "missing-dataset-folder", "zero-lr", "unknown-class", "csv-for-generate",
])
def test_user_mistakes_exit_2_with_one_line(runs, tmp_path: Path, case: str) -> None:
    vae = ckpt(runs, "vae")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(56)))
    argv, words = {
        "missing-checkpoint": (["evaluate", tmp_path / "missing.safetensors"], ("missing.safetensors",
                                                                                "does not exist")),
        "not-a-checkpoint": (["encode", junk, "--out", tmp_path / "z.npy"], ("junk.safetensors",)),
        "bad-output-suffix": (["generate", vae, "--out", tmp_path / "x.jpg"], ("x.jpg", ".png or .npy")),
        "bad-train-suffix": (train_args("ae", tmp_path / "m.pt"), ("m.pt", ".safetensors")),
        "missing-output-folder": (["reconstruct", vae, "--out", tmp_path / "nope" / "r.npy"], ("does not exist",)),
        "missing-train-folder": (train_args("ae", tmp_path / "nope" / "m.safetensors"), ("does not exist",)),
        "missing-dataset-folder": (train_args("ae", tmp_path / "m.safetensors", "--dataset", tmp_path / "no-pics"),
                                   ("no-pics",)),
        "zero-lr": (train_args("ae", tmp_path / "m.safetensors", "--lr", "0"), ("learning rate",)),
        "unknown-class": (train_args("ae", tmp_path / "m.safetensors", "--classes", "0,12"), ("12",)),
        "csv-for-generate": (["generate", vae, "--out", tmp_path / "x.csv"], (".png or .npy",)),
    }[case]
    before = set(os.listdir(tmp_path))
    rc, out, err = run(*argv)
    assert_user_error(rc, err, *words)
    assert out == ""
    assert set(os.listdir(tmp_path)) == before  # nothing written


@pytest.mark.parametrize("argv,words", [
    (["--lr", "abc"], ("--lr", "'abc' is not a number")),
    (["--lr", "nan"], ("--lr",)),
    (["--epochs", "0"], ("--epochs", "at least 1")),
    (["--classes", "a,b"], ("--classes",)),
    (["--device", "tpu"], ("--device", "tpu")),
    (["--recon-loss", "l7"], ("--recon-loss",)),
])
def test_bad_option_values_exit_2_with_one_error_line(tmp_path: Path, argv, words) -> None:
    out = tmp_path / "m.safetensors"
    rc, stdout, err = run("train", "--out", out, *argv)
    assert_usage_error(rc, err, *words)
    assert not out.exists()


def test_a_missing_required_option_and_an_unknown_command_exit_2() -> None:
    rc, _, err = run("generate", "some.safetensors")
    assert_usage_error(rc, err, "--out")
    rc, _, err = run("frobnicate")
    assert_usage_error(rc, err, "frobnicate")


def test_version() -> None:
    rc, out, _ = run("--version")
    assert rc == 0
    assert out.strip() == f"latent-explorer {__version__}"


# -- datasets, classes, seeds ---------------------------------------------------------------


def _png_folder(root: Path) -> Path:
    """Two classes of 8 tiny 20x20 greyscale PNGs (bright blocks in different places), plus a stray text file."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(("circles", "squares")):
        (root / name).mkdir(parents=True)
        for i in range(8):
            arr = rng.integers(0, 40, (20, 20), dtype=np.uint8)
            arr[2:10, 2 + 8 * label: 10 + 8 * label] = 250
            Image.fromarray(arr, mode="L").save(root / name / f"{i}.png")
    (root / "squares" / "notes.txt").write_text("not an image")
    return root


def test_train_a_conditional_model_on_a_folder_of_pngs(tmp_path: Path) -> None:
    folder = _png_folder(tmp_path / "shapes")
    out = tmp_path / "shapes.safetensors"
    rc, stdout, err = run("train", "--model", "cvae", "--dataset", folder, "--epochs", 1, "--batch-size", 4,
                          "--device", "cpu", "--json", "--out", out)
    assert rc == 0, err
    assert "skipped" in err and "notes.txt" in err and "Traceback" not in err
    assert strict_json(stdout.strip())["epoch"] == 1
    saved = load_checkpoint(out)
    assert saved.class_names == ("circles", "squares")
    assert saved.model_config.num_classes == 2 and saved.model_config.conditional
    assert saved.model_config.image_shape == (1, 32, 32)  # folders are resized to 32 px by default
    assert saved.data_config.dataset == str(folder)

    rc, _, err = run("generate", out, "--n", 3, "--label", 1, "--out", tmp_path / "g.npy")
    assert rc == 0, err
    assert np.load(tmp_path / "g.npy").shape == (3, 1, 32, 32)
    rc, _, err = run("generate", out, "--label", 2, "--out", tmp_path / "g2.npy")
    assert_user_error(rc, err, "circles, squares", "not 2")
    rc, out_json, err = run("evaluate", out, "--json")
    assert rc == 0, err
    report = strict_json(out_json)
    assert report["dataset"] == str(folder) and report["test_images"] == 2  # 10% of 16, rounded


def test_a_conditional_model_on_a_folder_without_classes_is_an_error(tmp_path: Path) -> None:
    folder = _png_folder(tmp_path / "shapes")
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in (folder / "circles").glob("*.png"):
        shutil.copy(p, flat / p.name)
    rc, _, err = run("train", "--model", "cvae", "--dataset", flat, "--out", tmp_path / "m.safetensors")
    assert_user_error(rc, err, "conditional")


def test_train_on_chosen_classes_only(tmp_path: Path) -> None:
    out = tmp_path / "01.safetensors"
    rc, _, err = run(*train_args("ae", out, "--classes", "0,1"))
    assert rc == 0, err
    assert load_checkpoint(out).data_config.classes == (0, 1)
    rc, _, err = run("encode", out, "--out", tmp_path / "z.csv")
    assert rc == 0, err
    with open(tmp_path / "z.csv", newline="") as fh:
        labels = [int(row["label"]) for row in csv.DictReader(fh)]
    assert len(labels) == 300
    assert set(labels) == {0, 1}


def test_the_same_seed_gives_the_same_model(tmp_path: Path) -> None:
    reports = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        out = tmp_path / f"{name}.safetensors"
        rc, _, err = run(*train_args("ae", out, "--seed", seed))
        assert rc == 0, err
        rc, stdout, err = run("evaluate", out, "--json", "--device", "cpu")
        assert rc == 0, err
        reports[name] = strict_json(stdout)
    a, b, c = (load_checkpoint(tmp_path / f"{n}.safetensors").state_dict for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert reports["a"] == reports["b"]
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert reports["a"]["test_loss"] != reports["c"]["test_loss"]


# -- divergence ----------------------------------------------------------------------------


def _poison_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every training-mode forward pass returns a NaN loss (evaluation stays finite)."""
    real = Autoencoder.forward

    def forward(self, x, y=None):
        out = real(self, x, y)
        return dataclasses.replace(out, loss=out.loss * float("nan")) if self.training else out

    monkeypatch.setattr(Autoencoder, "forward", forward)


def test_a_diverging_run_exits_3_and_keeps_the_last_good_weights(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # --lr 9 does not reliably make these small models diverge (Adam's steps are bounded and
    # the losses stay finite), so the loss is poisoned instead: deterministic.
    _poison_training(monkeypatch)
    out = tmp_path / "d.safetensors"
    rc, stdout, err = run(*train_args("vae", out))
    assert rc == 3, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latent-explorer: error: ")
    assert "NaN" in lines[0] and "lower learning rate" in lines[0] and str(out) in lines[0]
    assert stdout == ""  # no epoch finished
    monkeypatch.undo()
    saved = load_checkpoint(out)  # refuses NaN weights, so loading proves they are finite
    assert saved.history.last_epoch == 0


def test_train_json_stays_json_when_the_test_loss_is_not_finite(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from explorer.training import engine

    real = engine.evaluate_tensors

    def evaluate(*args, **kwargs):
        metrics = real(*args, **kwargs)
        return {**metrics, "loss": float("nan"), "kl": float("inf")}

    monkeypatch.setattr(engine, "evaluate_tensors", evaluate)
    rc, stdout, err = run(*train_args("vae", tmp_path / "n.safetensors"))
    assert rc in (0, 3), err
    for line in stdout.strip().splitlines():
        strict_json(line)


def test_evaluate_on_a_checkpoint_with_a_damaged_history_is_a_user_error(runs, tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save as st_save

    with safe_open(str(ckpt(runs, "ae")), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = dict(f.metadata())
    metadata["history"] = json.dumps({"epochs": [{}]})
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(st_save(tensors, metadata=metadata))
    rc, _, err = run("evaluate", bad, "--json")
    assert_user_error(rc, err, "bad.safetensors")


# -- the installed entry points ------------------------------------------------------------


def _env_for_subprocess() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1")


def test_the_console_script_runs_evaluate(runs) -> None:
    script = Path(sys.executable).with_name("latent-explorer")
    if not script.exists():
        script = shutil.which("latent-explorer")
        assert script, "the latent-explorer console script is not installed"
    path = ckpt(runs, "ae")
    done = subprocess.run([str(script), "evaluate", str(path), "--json", "--device", "cpu"], capture_output=True,
                          text=True, timeout=120, env=_env_for_subprocess())
    assert done.returncode == 0, done.stderr
    report = strict_json(done.stdout)
    in_process = strict_json(run("evaluate", path, "--json", "--device", "cpu")[1])
    assert report["model"] == "ae"
    assert report["test_loss"] == pytest.approx(in_process["test_loss"], rel=1e-5)


def test_python_dash_m_explorer_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "explorer", "evaluate", str(tmp_path / "gone.safetensors")],
                          capture_output=True, text=True, timeout=120, env=_env_for_subprocess())
    assert_user_error(done.returncode, done.stderr, "gone.safetensors", "does not exist")
    assert done.stdout == ""


def test_generate_refuses_more_images_than_fit_in_memory_before_drawing(tmp_path, monkeypatch):
    from cli_runner import run as run_cli

    ckpt = tmp_path / "vae.safetensors"
    code, _, err = run_cli("train", "--model", "vae", "--epochs", "1", "--limit", "200", "--out", ckpt)
    assert code == 0, err
    monkeypatch.setenv("LATENT_EXPLORER_FREE_MEMORY", "50M")
    code, _, err = run_cli("generate", ckpt, "--n", "100000", "--out", tmp_path / "many.npy")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--n" in err and not (tmp_path / "many.npy").exists()

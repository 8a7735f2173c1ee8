"""``latent-explorer evaluate`` (explorer.cli.cmd_evaluate) and the evaluation suite behind it
(explorer.evaluation.suite.evaluate_model), on one tiny VAE (trained with --binarize dynamic)
and one tiny plain autoencoder, both trained once per module through the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import assert_usage_error, assert_user_error, run  # tests/unit is on sys.path (pytest rootdir conftest)
from PIL import Image

from explorer.data import load_dataset
from explorer.errors import UserError
from explorer.evaluation import EvaluationRequest, Group, Subject, evaluate_model, records_from_json
from explorer.evaluation.files import evaluation_data_config, load_evaluation_data
from explorer.evaluation.suite import fingerprint_of_test_set
from explorer.training.checkpoint import load_checkpoint, save_checkpoint
from explorer.training.evaluate import evaluate_tensors

pytestmark = pytest.mark.usefixtures("cli_module_env")  # private cache, one torch thread

TRAIN_SEED = 3  # not the default, so a test loss evaluated with seed 0 would differ


def strict_json(text: str):
    def refuse(name: str):
        raise ValueError(f"{name} is not JSON")

    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return json.loads(lines[0], parse_constant=refuse)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("evaluate-runs")
    out = {}
    for model, extra in (("vae", ("--binarize", "dynamic", "--seed", TRAIN_SEED)), ("ae", ())):
        path = folder / f"{model}.safetensors"
        rc, _, err = run("train", "--model", model, "--limit", 300, "--epochs", 1, "--device", "cpu", "--json",
                         "--out", path, *extra)
        assert rc == 0, err
        out[model] = path
    return out


@pytest.fixture
def vae_copy(trained, tmp_path: Path) -> Path:
    """A private copy of the VAE checkpoint, for tests that rewrite it."""
    path = tmp_path / "vae.safetensors"
    shutil.copyfile(trained["vae"], path)
    return path


def evaluate(path: Path, *extra: object) -> tuple[int, str, str]:
    return run("evaluate", path, "--device", "cpu", *extra)


def evaluate_json(path: Path, *extra: object) -> dict:
    rc, out, err = evaluate(path, "--json", *extra)
    assert rc == 0, err
    assert "Traceback" not in err
    return strict_json(out)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in load_checkpoint(path).build_model().state_dict().items()}


# -- the test loss -------------------------------------------------------------------------


def test_plain_evaluate_gives_the_test_loss_training_computed(trained) -> None:
    path = trained["vae"]
    report = evaluate_json(path)
    ckpt = load_checkpoint(path)
    assert ckpt.train_config.seed == TRAIN_SEED and ckpt.data_config.binarize == "dynamic"
    data = load_dataset(ckpt.data_config)
    expected = evaluate_tensors(ckpt.build_model().eval(), data.test_images, data.test_labels, seed=TRAIN_SEED)
    assert report["test_loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert report["kl"] == pytest.approx(expected["kl"], rel=1e-6)
    assert report["recon"] == pytest.approx(expected["recon"], rel=1e-6)
    assert report["binarize"] == "dynamic" and report["dataset"] == "mnist" and report["test_images"] == 300
    assert "iw_nll" not in report and "psnr" not in report and "active_units" not in report
    assert report["notes"] == []
    # the last epoch's test loss in the history is that same number
    assert report["test_loss"] == pytest.approx(ckpt.history.epochs[-1]["test"]["loss"], rel=1e-5)


def test_json_says_what_the_numbers_were_measured_on(trained) -> None:
    report = evaluate_json(trained["vae"])
    assert (report["dataset"], report["split"], report["binarize"]) == ("mnist", "test", "dynamic")
    assert report["n_images"] == report["test_images"] == 300
    assert re.fullmatch(r"[0-9a-f]{16}", report["test_set"]), report["test_set"]
    assert report["measured_on"] == "mnist test, 300 images, binarised: dynamic"
    grey = evaluate_json(trained["vae"], "--binarize", "none")
    assert grey["n_images"] == 300 and grey["binarize"] == "none"
    assert grey["test_set"] != report["test_set"], "grey and binary test images are other data"
    rc, out, err = evaluate(trained["vae"])
    assert rc == 0, err
    assert "mnist test, 300 images, binarised: dynamic" in out and report["test_set"] in out
    assert "n_images" not in out, "the printed table shows the size once, as test_images"


def test_the_test_set_fingerprint_tells_test_sets_apart(trained) -> None:
    _, data, _ = _model_and_data(trained["vae"])
    _, again, _ = _model_and_data(trained["vae"])
    fingerprint = fingerprint_of_test_set(data)
    assert fingerprint == fingerprint_of_test_set(again), "the same images load to the same fingerprint"
    assert fingerprint != fingerprint_of_test_set(data.limited(200)), "a smaller test set"
    other = dataclasses.replace(data, test_images=data.test_images.flip(0), test_labels=data.test_labels.flip(0))
    assert fingerprint != fingerprint_of_test_set(other), "the same images in another order pair with other numbers"
    relabelled = dataclasses.replace(data, test_labels=(data.test_labels + 1) % 10)
    assert fingerprint != fingerprint_of_test_set(relabelled), "labels are part of what k-NN accuracy measures"


def test_plain_evaluate_table_shows_titles(trained) -> None:
    rc, out, err = evaluate(trained["vae"], "--iw", 2)
    assert rc == 0, err
    assert "test_loss" in out and "iw_nll" in out and " ± " in out
    assert "iw_se" not in out  # shown inside the IW NLL cell


# -- likelihood ------------------------------------------------------------------------------


def test_iw_gives_a_likelihood_no_worse_than_the_elbo(trained) -> None:
    report = evaluate_json(trained["vae"], "--iw", 5)
    assert report["iw_k"] == 5
    assert math.isfinite(report["iw_nll"]) and report["iw_nll"] > 0
    assert report["iw_se"] > 0
    # the IW bound is tighter than the (one-sample) ELBO on average
    assert report["iw_nll"] <= report["test_loss"] + 3 * report["iw_se"]
    assert not any("grey" in n for n in report["notes"])  # dynamic: the test images are binary


def test_iw_is_seeded(trained) -> None:
    a = evaluate_json(trained["vae"], "--iw", 3)
    b = evaluate_json(trained["vae"], "--iw", 3)
    c = evaluate_json(trained["vae"], "--iw", 3, "--seed", 1)
    assert a["iw_nll"] == b["iw_nll"]
    assert a["iw_nll"] != c["iw_nll"]


def test_iw_on_a_plain_autoencoder_refuses_in_one_line(trained) -> None:
    rc, out, err = evaluate(trained["ae"], "--iw", 5)
    assert_user_error(rc, err, "likelihood")
    assert out == ""


def test_all_on_a_plain_autoencoder_skips_with_notes(trained) -> None:
    rc, out, err = evaluate(trained["ae"], "--all", "--iw", 3, "--n-samples", 200, "--json")
    assert rc == 0, err
    report = strict_json(out)
    notes = report["notes"]
    assert any(n.startswith("Log-likelihood skipped") for n in notes), notes
    assert any(n.startswith("Sample quality skipped") for n in notes), notes
    assert "iw_nll" not in report and "fid" not in report and "iw_k" not in report
    # what does apply is there
    assert report["recon_mse"] >= 0 and "psnr" in report and "knn_acc_100" in report
    assert "active_units" not in report  # no posterior: noted instead
    assert any("Active units" in n for n in notes)
    # every note also went to stderr, one line each
    assert err.count("latent-explorer: note: ") == len(notes)
    assert "Traceback" not in err


@pytest.mark.parametrize("k", [0, 6000, "many"])
def test_iw_out_of_range_is_refused_by_argparse(trained, k) -> None:
    rc, out, err = evaluate(trained["vae"], "--iw", k)
    assert_usage_error(rc, err, "--iw")
    assert out == ""


def test_n_samples_out_of_range_is_refused(trained) -> None:
    rc, _, err = evaluate(trained["vae"], "--samples", "--n-samples", 10)
    assert_usage_error(rc, err, "--n-samples")


# -- latent and reconstructions ------------------------------------------------------------


def test_latent_metrics(trained) -> None:
    report = evaluate_json(trained["vae"], "--latent")
    latent_dim = report["latent_dim"]
    assert 0 <= report["active_units"] <= latent_dim and report["active_units"] == int(report["active_units"])
    assert len(report["kl_per_dim"]) == latent_dim
    assert all(v >= 0 for v in report["kl_per_dim"])
    assert sum(report["kl_per_dim"]) == pytest.approx(report["kl"], rel=0.2)  # mean codes vs one sample
    for key in ("knn_acc_100", "probe_acc_100", "knn_acc_all", "probe_acc_all"):
        assert 0.0 <= report[key] <= 1.0, key
    assert "knn_acc_1000" not in report  # 300 training images: the 1,000-label budget does not apply
    assert report["knn_acc_all"] > 0.3  # well above chance even after one epoch


def test_recon_metrics(trained) -> None:
    report = evaluate_json(trained["vae"], "--recon")
    assert report["recon_mse"] >= 0 and report["recon_mse"] < 0.25
    assert math.isfinite(report["psnr"]) and report["psnr"] > 0
    assert "iw_nll" not in report and "active_units" not in report


# -- --save ----------------------------------------------------------------------------------


def test_save_keeps_the_numbers_and_the_weights(vae_copy: Path) -> None:
    before = weights(vae_copy)
    assert load_checkpoint(vae_copy).evaluations == []
    rc, out, err = evaluate(vae_copy, "--iw", 3, "--save", "--json")
    assert rc == 0, err
    assert "kept the numbers in" in err
    report = strict_json(out)
    records = records_from_json(load_checkpoint(vae_copy).evaluations)
    assert len(records) == 1
    record = records[0]
    assert (record.dataset, record.binarize) == ("mnist", "dynamic")
    assert record.step == load_checkpoint(vae_copy).history.last_step
    assert record.iw_k == 3
    assert (record.split, record.n_images, record.fingerprint) == ("test", 300, report["test_set"])
    for key in ("test_loss", "iw_nll", "iw_se"):
        assert record.metrics[key] == report[key], key
    after = weights(vae_copy)
    assert after.keys() == before.keys()
    for name, tensor in before.items():
        assert torch.equal(tensor, after[name]) and tensor.dtype == after[name].dtype, name

    # a second --save with another group merges into the same record
    rc, _, err = evaluate(vae_copy, "--recon", "--save", "--json")
    assert rc == 0, err
    records = records_from_json(load_checkpoint(vae_copy).evaluations)
    assert len(records) == 1
    assert {"test_loss", "iw_nll", "iw_se", "recon_mse", "psnr"} <= set(records[0].metrics)
    assert records[0].iw_k == 3
    for name, tensor in before.items():
        assert torch.equal(tensor, weights(vae_copy)[name]), name


def test_save_on_another_binarisation_adds_a_record(vae_copy: Path) -> None:
    assert evaluate(vae_copy, "--save")[0] == 0
    assert evaluate(vae_copy, "--save", "--binarize", "none")[0] == 0
    records = records_from_json(load_checkpoint(vae_copy).evaluations)
    assert [r.binarize for r in records] == ["dynamic", "none"]


def test_save_on_a_read_only_checkpoint_refuses_before_computing(vae_copy: Path, monkeypatch) -> None:
    os.chmod(vae_copy, 0o444)
    try:
        if os.access(vae_copy, os.W_OK):
            pytest.skip("this user can write read-only files (root)")
        original = vae_copy.read_bytes()
        import explorer.evaluation

        def must_not_run(*args, **kwargs):
            raise AssertionError("evaluated before refusing")

        monkeypatch.setattr(explorer.evaluation, "evaluate_model", must_not_run)
        rc, out, err = evaluate(vae_copy, "--save", "--iw", 3)
        assert_user_error(rc, err, "read-only")
        assert out == ""
        assert vae_copy.read_bytes() == original
    finally:
        os.chmod(vae_copy, 0o644)


def test_save_on_a_file_this_user_may_not_write_refuses_before_computing(vae_copy: Path, monkeypatch) -> None:
    # the same refusal where the tests run as root (who may write a 0o444 file): access() says no
    import explorer.atomic
    import explorer.evaluation

    real_access = os.access
    target = os.path.realpath(vae_copy)

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and os.path.realpath(path) == target:
            return False
        return real_access(path, mode, *args, **kwargs)

    def must_not_run(*args, **kwargs):
        raise AssertionError("evaluated before refusing")

    monkeypatch.setattr(explorer.atomic.os, "access", access)
    monkeypatch.setattr(explorer.evaluation, "evaluate_model", must_not_run)
    original = vae_copy.read_bytes()
    rc, out, err = evaluate(vae_copy, "--save", "--latent")
    assert_user_error(rc, err, "read-only")
    assert out == "" and vae_copy.read_bytes() == original
    # without --save the same file evaluates
    monkeypatch.undo()
    monkeypatch.setattr(explorer.atomic.os, "access", access)
    assert evaluate(vae_copy)[0] == 0


def test_damaged_stored_evaluations_still_load_and_evaluate(trained, tmp_path: Path) -> None:
    ckpt = load_checkpoint(trained["vae"])
    path = tmp_path / "damaged.safetensors"
    save_checkpoint(path, ckpt.build_model(), ckpt.data_config, ckpt.train_config, ckpt.history, ckpt.class_names,
                    evaluations=[{"dataset": 5}])
    loaded = load_checkpoint(path)
    assert records_from_json(loaded.evaluations) == []
    report = evaluate_json(path)
    assert report["test_loss"] == pytest.approx(evaluate_json(trained["vae"])["test_loss"], rel=1e-6)
    # --save replaces the damaged entry with a good record
    assert evaluate(path, "--save")[0] == 0
    records = records_from_json(load_checkpoint(path).evaluations)
    assert len(records) == 1 and records[0].metrics["test_loss"] == report["test_loss"]


def test_evaluations_metadata_that_is_not_json_is_ignored(trained, tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(trained["vae"]), framework="pt") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    metadata["evaluations"] = '[{"dataset": "mnist", "metrics": {'  # cut short
    path = tmp_path / "bad-json.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    assert load_checkpoint(path).evaluations == []
    report = evaluate_json(path)
    assert report["test_loss"] > 0


# -- binarisation ----------------------------------------------------------------------------


def test_dynamic_test_images_are_binary(trained) -> None:
    ckpt = load_checkpoint(trained["vae"])
    data = load_evaluation_data(evaluation_data_config(ckpt.data_config, ckpt.model_config), ckpt.model_config)
    assert set(torch.unique(data.test_images).tolist()) <= {0, 255}
    grey = load_evaluation_data(evaluation_data_config(ckpt.data_config, ckpt.model_config, binarize="none"),
                                ckpt.model_config)
    assert not set(torch.unique(grey.test_images).tolist()) <= {0, 255}
    assert grey.test_images.shape == data.test_images.shape
    # the same draw every time
    again = load_evaluation_data(evaluation_data_config(ckpt.data_config, ckpt.model_config), ckpt.model_config)
    assert torch.equal(again.test_images, data.test_images)


def test_binarize_none_on_a_dynamic_model_evaluates_grey_images(trained) -> None:
    binary = evaluate_json(trained["vae"])
    grey = evaluate_json(trained["vae"], "--binarize", "none")
    assert grey["binarize"] == "none"
    assert grey["test_loss"] != binary["test_loss"]
    rc, out, err = evaluate(trained["vae"], "--binarize", "none", "--iw", 2, "--json")
    assert rc == 0, err
    assert "latent-explorer: note: " in err and "grey levels" in err
    assert any("grey levels" in n for n in strict_json(out)["notes"])


def test_binarize_static_evaluates_the_same_test_images_as_dynamic(trained) -> None:
    dynamic = evaluate_json(trained["vae"])
    static = evaluate_json(trained["vae"], "--binarize", "static")
    assert static["binarize"] == "static"
    assert static["test_loss"] == dynamic["test_loss"]  # one fixed test draw, whichever mode


# -- other datasets --------------------------------------------------------------------------


def _image_folder(root: Path, size: int, mode: str, per_class: int = 10) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(("cats", "dogs")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shape = (size, size) if mode == "L" else (size, size, 3)
            pixels = rng.integers(0, 256, shape, dtype=np.uint8) // (2 - c)  # the classes differ in brightness
            Image.fromarray(pixels, mode).save(root / name / f"{i:02}.png")
    return root


def test_dataset_folder_of_matching_images_evaluates(trained, tmp_path: Path) -> None:
    folder = _image_folder(tmp_path / "grey28", 28, "L")
    report = evaluate_json(trained["vae"], "--dataset", folder)
    assert report["dataset"] == str(folder)
    assert report["binarize"] == "dynamic"  # as the model was trained
    assert 1 <= report["test_images"] < 20
    assert math.isfinite(report["test_loss"]) and report["test_loss"] > 0


def test_dataset_folder_is_read_at_the_models_size_and_channels(trained, tmp_path: Path) -> None:
    folder = _image_folder(tmp_path / "rgb32", 32, "RGB")
    ckpt = load_checkpoint(trained["vae"])
    config = evaluation_data_config(ckpt.data_config, ckpt.model_config, str(folder))
    assert (config.channels, config.image_size) == (1, 28)
    assert config.limit is None and config.classes is None
    data = load_evaluation_data(config, ckpt.model_config)
    assert data.image_shape == (1, 28, 28)
    report = evaluate_json(trained["vae"], "--dataset", folder, "--latent")
    assert report["dataset"] == str(folder) and report["test_images"] == data.test_images.shape[0]
    assert len(report["kl_per_dim"]) == report["latent_dim"]


def test_missing_dataset_refuses_in_one_line(trained, tmp_path: Path) -> None:
    rc, out, err = evaluate(trained["vae"], "--dataset", tmp_path / "no-such-folder")
    assert_user_error(rc, err, "no-such-folder")
    assert out == ""


def test_dataset_with_a_nul_refuses_in_one_line(trained) -> None:
    rc, _, err = evaluate(trained["vae"], "--dataset", "mn\x00ist")
    assert_user_error(rc, err, "NUL")


# -- evaluate_model directly -----------------------------------------------------------------


def _model_and_data(path: Path):
    ckpt = load_checkpoint(path)
    data = load_evaluation_data(evaluation_data_config(ckpt.data_config, ckpt.model_config), ckpt.model_config)
    subject = Subject(dataset=ckpt.data_config.dataset, binarize=ckpt.data_config.binarize,
                      step=ckpt.history.last_step, loss_seed=ckpt.train_config.seed)
    return ckpt.build_model(), data, subject


def test_progress_fractions_rise_to_one_with_stage_labels(trained) -> None:
    model, data, subject = _model_and_data(trained["vae"])
    calls: list[tuple[float, str]] = []
    request = EvaluationRequest(groups=frozenset({Group.LOSS, Group.RECON, Group.LATENT, Group.LIKELIHOOD}),
                                iw_k=2)
    model.train()
    evaluation = evaluate_model(model, data, request, subject, progress=lambda f, label: calls.append((f, label)))
    assert model.training  # put back as it was
    fractions = [f for f, _ in calls]
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert all(b >= a for a, b in zip(fractions, fractions[1:])), fractions
    assert fractions[-1] == 1.0 and calls[-1][1] == "Done"
    labels = list(dict.fromkeys(label for _, label in calls))
    assert labels == ["Test loss", "Reconstructions", "Latent space", "Log-likelihood (K=2)", "Done"]
    assert {"test_loss", "recon_mse", "psnr", "active_units", "iw_nll"} <= set(evaluation.metrics)
    assert evaluation.iw_k == 2 and evaluation.step == subject.step and evaluation.binarize == "dynamic"
    assert evaluation.seconds > 0


def test_strict_request_refuses_likelihood_on_a_plain_autoencoder(trained) -> None:
    model, data, subject = _model_and_data(trained["ae"])
    request = EvaluationRequest(groups=frozenset({Group.LOSS, Group.LIKELIHOOD}), iw_k=2, strict=True)
    with pytest.raises(UserError, match="likelihood"):
        evaluate_model(model, data, request, subject)
    with pytest.raises(UserError, match="sample"):
        evaluate_model(model, data, EvaluationRequest(groups=frozenset({Group.SAMPLES}), n_samples=100), subject)


def test_lenient_request_notes_what_it_skipped(trained) -> None:
    model, data, subject = _model_and_data(trained["ae"])
    request = EvaluationRequest(groups=frozenset({Group.LOSS, Group.LIKELIHOOD, Group.SAMPLES}), iw_k=2,
                                n_samples=100, strict=False)
    calls: list[float] = []
    evaluation = evaluate_model(model, data, request, subject, progress=lambda f, _: calls.append(f))
    assert "test_loss" in evaluation.metrics and "iw_nll" not in evaluation.metrics
    assert evaluation.iw_k == 0 and evaluation.n_samples == 0
    assert [n.split(":")[0] for n in evaluation.notes] == ["Sample quality skipped", "Log-likelihood skipped"]
    assert all("\n" not in n for n in evaluation.notes)
    assert calls[-1] == 1.0 and all(b >= a for a, b in zip(calls, calls[1:]))

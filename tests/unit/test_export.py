"""Exports other tools run (explorer.export, `latent-explorer export`): ONNX files checked in
onnxruntime, .pt2 programs loaded in an interpreter that cannot import this package, and the
web page's decoder checked here in numpy (tests/unit/test_export_web.py drives it in Chromium).

Every comparison is against the app's own ``encode``/``decode``, at batch sizes 1 and 5.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import assert_user_error, run  # tests/unit is on sys.path (pytest rootdir conftest)

from explorer.config import DataConfig, TrainConfig
from explorer.export import export_model
from explorer.export.common import ExportError, targets
from explorer.models.registry import build_model, config_for_data
from explorer.training.checkpoint import save_checkpoint
from explorer.training.runs import model_config_for

pytestmark = pytest.mark.usefixtures("cli_module_env")  # private cache, one torch thread

PRESETS = ("vae", "cvae", "conv-vae")
BATCHES = (1, 5)


def need(module: str):
    """The module, or a skip; under CI (CI=true) a failure: CI installs the test extra."""
    if os.environ.get("CI") == "true":
        return __import__(module)
    return pytest.importorskip(module)


def model_of(preset: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config = config_for_data(model_config_for(preset, **overrides), (1, 28, 28), 10)
    return build_model(config).eval()


def inputs(model, n: int, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    return {"image": torch.rand(n, *model.config.image_shape, generator=g),
            "code": torch.randn(n, model.config.latent_dim, generator=g) * 1.5,
            "labels": labels, "onehot": torch.nn.functional.one_hot(labels, 10).float()}


def expected(model, x: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    y = x["labels"] if model.is_conditional else None
    with torch.no_grad():
        dist = model.encode(x["image"], y)
        out = {"image": model.decode(x["code"], y).numpy(), "mean": dist.mean.numpy()}
        if dist.logvar is not None:
            out["logvar"] = dist.logvar.numpy()
    return out


# -- ONNX ----------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_onnx_files_run_in_onnxruntime_like_the_app(preset, tmp_path):
    ort = need("onnxruntime")
    onnx = need("onnx")
    model = model_of(preset)
    written = export_model(model, "onnx", "both", tmp_path / f"{preset}.onnx")
    assert [p.name for p in written] == [f"{preset}.encoder.onnx", f"{preset}.decoder.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)  # no sidecar
    for path in written:
        proto = onnx.load(str(path), load_external_data=False)
        assert all(t.data_location == onnx.TensorProto.DEFAULT for t in proto.graph.initializer)
        assert all(i.type.tensor_type.shape.dim[0].dim_param for i in proto.graph.input)  # a dynamic batch
    encoder, decoder = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in written)
    conditional = model.is_conditional
    assert [i.name for i in decoder.get_inputs()] == (["code", "onehot"] if conditional else ["code"])
    assert [o.name for o in encoder.get_outputs()] == ["mean", "logvar"]
    for n in BATCHES:
        x = inputs(model, n)
        want = expected(model, x)
        feed_e = {"image": x["image"].numpy()}
        feed_d = {"code": x["code"].numpy()}
        if conditional:
            feed_e["onehot"] = feed_d["onehot"] = x["onehot"].numpy()
        (image,) = decoder.run(None, feed_d)
        mean, logvar = encoder.run(None, feed_e)
        assert image.shape == (n, 1, 28, 28)
        np.testing.assert_allclose(image, want["image"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(mean, want["mean"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(logvar, want["logvar"], atol=1e-4, rtol=0)


def test_a_plain_autoencoders_encoder_gives_the_mean_alone(tmp_path):
    ort = need("onnxruntime")
    need("onnxscript")
    model = model_of("sparse-ae")  # also a ReLU code
    (path,) = export_model(model, "onnx", "encoder", tmp_path / "enc.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["mean"]
    x = inputs(model, 5)
    (mean,) = session.run(None, {"image": x["image"].numpy()})
    np.testing.assert_allclose(mean, expected(model, x)["mean"], atol=1e-4, rtol=0)


# -- .pt2 ----------------------------------------------------------------------------------

# Run by `python -I` in an empty folder: `explorer` is refused before anything is loaded, so
# the programs must stand on torch alone.
FRESH = textwrap.dedent("""
    import importlib.abc, json, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "explorer" or name.startswith("explorer."):
                raise ModuleNotFoundError(f"no {name} here", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
    try:
        import explorer  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("explorer was importable")

    import numpy as np
    import torch

    for job in json.loads(sys.argv[1]):
        args = [torch.from_numpy(np.load(name)) for name in job["inputs"]]
        with torch.no_grad():
            out = torch.export.load(job["program"]).module()(*args)
        out = out if isinstance(out, tuple) else (out,)
        for t, name in zip(out, job["outputs"]):
            np.save(name, t.numpy())
    assert "explorer" not in sys.modules
    print("ok")
""")


def test_pt2_programs_run_where_explorer_cannot_be_imported(tmp_path):
    """Both parts of a vae, a cvae (with the one-hot) and a conv-vae, batches 1 and 5, in one
    fresh interpreter; outputs within 1e-5 of the app's."""
    jobs, checks = [], []
    for preset in PRESETS:
        model = model_of(preset)
        encoder_file, decoder_file = export_model(model, "pt2", "both", tmp_path / f"{preset}.pt2")
        assert (encoder_file.name, decoder_file.name) == (f"{preset}.encoder.pt2", f"{preset}.decoder.pt2")
        for n in BATCHES:
            x = inputs(model, n)
            want = expected(model, x)
            stem = tmp_path / f"{preset}-{n}"
            names = {}
            for key in ("image", "code", "onehot"):
                names[key] = f"{stem}-{key}.npy"
                np.save(names[key], x[key].numpy())
            extra = [names["onehot"]] if model.is_conditional else []
            outs = {k: f"{stem}-out-{k}.npy" for k in ("image", "mean", "logvar")}
            jobs.append({"program": str(decoder_file), "inputs": [names["code"], *extra], "outputs": [outs["image"]]})
            jobs.append({"program": str(encoder_file), "inputs": [names["image"], *extra],
                         "outputs": [outs["mean"], outs["logvar"]]})
            checks += [(outs[k], want[k]) for k in ("image", "mean", "logvar")]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    result = subprocess.run([sys.executable, "-I", "-c", FRESH, json.dumps(jobs)], cwd=fresh, capture_output=True,
                            text=True, timeout=300, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
    for name, want in checks:
        np.testing.assert_allclose(np.load(name), want, atol=1e-5, rtol=0)


# -- where files go ---------------------------------------------------------------------------


def test_both_parts_go_beside_the_name_and_one_part_to_it(tmp_path):
    assert targets(tmp_path / "m.onnx", "decoder", ".onnx") == [("decoder", tmp_path / "m.onnx")]
    assert targets(tmp_path / "m.pt2", "both", ".pt2") == [("encoder", tmp_path / "m.encoder.pt2"),
                                                           ("decoder", tmp_path / "m.decoder.pt2")]
    with pytest.raises(ExportError, match="must end in .onnx"):
        targets(tmp_path / "m.pt2", "both", ".onnx")
    with pytest.raises(ExportError, match="give the file a name"):
        targets(tmp_path / ".onnx", "both", ".onnx")


# -- the web page's decoder, in numpy ---------------------------------------------------------


def _page_data(page: str) -> dict:
    start = page.index('<script type="application/json" id="model-data">') + len(
        '<script type="application/json" id="model-data">')
    return json.loads(page[start:page.index("</script>", start)])


def _floats(text: str) -> np.ndarray:
    import base64

    return np.frombuffer(base64.b64decode(text), dtype="<f4")


@pytest.mark.parametrize("preset", ["vae", "cvae", "deep-ae"])
def test_the_pages_layers_are_the_decoders(preset):
    """The page's weights, run as the page's loop runs them (Linear, then its activation),
    give the app's decode: what the browser test checks end to end, here without one."""
    from explorer.export.web import web_page

    model = model_of(preset)
    codes = np.random.default_rng(0).normal(size=(300, model.config.latent_dim)).astype(np.float32)
    data = _page_data(web_page(model, codes, np.arange(300) % 10, tuple("abcdefghij")))
    x = inputs(model, 5)
    h = x["code"].double().numpy()
    if model.is_conditional:
        h = np.concatenate([h, x["onehot"].double().numpy()], axis=1)
    acts = {"relu": lambda s: np.maximum(s, 0), "sigmoid": lambda s: 1 / (1 + np.exp(-s)), "linear": lambda s: s}
    for layer in data["layers"]:
        w = _floats(layer["weight"]).reshape(layer["outputs"], layer["inputs"])
        h = acts[layer["activation"]](h @ w.T + _floats(layer["bias"]))
    assert data["layers"][-1]["activation"] == "sigmoid"
    assert [la["activation"] for la in data["layers"][:-1]] == ["relu"] * (len(data["layers"]) - 1)
    np.testing.assert_allclose(h.reshape(5, 1, 28, 28), expected(model, x)["image"], atol=1e-5, rtol=0)


def test_the_plane_is_the_mean_and_two_principal_axes():
    from explorer.analysis.projection import pca_axes
    from explorer.export.web import web_page

    model = model_of("vae")  # 20-d codes
    codes = np.random.default_rng(0).normal(size=(2500, 20)) * np.linspace(4, 0.1, 20)
    data = _page_data(web_page(model, codes, None))
    shown = codes[:2000]  # the first 2000 are drawn, and the axes are theirs
    axes = pca_axes(shown)
    np.testing.assert_allclose(data["origin"], shown.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(data["axes"], axes.basis[:2], atol=1e-9)
    points = np.stack([_floats(data["points_x"]), _floats(data["points_y"])], axis=1)
    assert points.shape == (2000, 2)
    np.testing.assert_allclose(points, axes.project(shown), atol=1e-4)
    assert data["labels"] is None and data["legend"] == []


def test_text_from_files_cannot_break_out_of_the_page():
    from explorer.export.web import web_page

    model = model_of("cvae")
    hostile = ("</script><script>alert(1)</script>", "<b>bold</b>", *"23456789")
    page = web_page(model, np.zeros((10, 2)), np.arange(10), hostile, title="<img src=x onerror=alert(1)>")
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>bold" not in page
    assert _page_data(page)["class_names"][0] == hostile[0]  # the names themselves survive, as text
    plain = web_page(model, np.zeros((10, 2)), np.arange(10))
    assert "http://" not in plain and "https://" not in plain and " src=" not in plain  # nothing to fetch


def test_a_conv_model_is_refused_as_a_web_page_in_one_line(tmp_path):
    with pytest.raises(ExportError, match="MLP decoders only.*conv") as caught:
        export_model(model_of("conv-vae"), "web", None, tmp_path / "page.html")
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Untrained (seeded) vae, cvae and conv-vae checkpoints on 300 MNIST images: the
    exports copy whatever weights there are, and the data is what the web page's dots need."""
    folder = tmp_path_factory.mktemp("export-cli")
    made = {}
    for preset in PRESETS:
        made[preset] = save_checkpoint(folder / f"{preset}.safetensors", model_of(preset), DataConfig(limit=300),
                                       TrainConfig(epochs=1), class_names=tuple(str(k) for k in range(10)))
    return made


def test_cli_writes_a_pt2_decoder(checkpoints, tmp_path):
    out = tmp_path / "dec.pt2"
    rc, _, err = run("export", checkpoints["cvae"], "--format", "pt2", "--part", "decoder", "--out", out)
    assert rc == 0, err
    assert out.exists() and "wrote" in err
    program = torch.export.load(out).module()  # trusted: this test wrote it
    x = inputs(model_of("cvae"), 5)
    with torch.no_grad():
        np.testing.assert_allclose(program(x["code"], x["onehot"]).numpy(), expected(model_of("cvae"), x)["image"],
                                   atol=1e-5, rtol=0)


def test_cli_onnx_writes_both_parts_by_default(checkpoints, tmp_path):
    need("onnxscript")
    rc, _, err = run("export", checkpoints["vae"], "--out", tmp_path / "vae.onnx")
    assert rc == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae.decoder.onnx", "vae.encoder.onnx"]


def test_cli_web_page_has_the_first_test_codes(checkpoints, tmp_path):
    out = tmp_path / "page.html"
    rc, _, err = run("export", checkpoints["vae"], "--format", "web", "--out", out)
    assert rc == 0, err
    data = _page_data(out.read_text(encoding="utf-8"))
    assert len(data["labels"]) == 300 and len(_floats(data["points_x"])) == 300
    assert [k for k, _ in data["legend"]] == list(range(10))


def test_cli_refuses_what_cannot_work_in_one_line(checkpoints, tmp_path, monkeypatch):
    out = tmp_path / "x.html"
    assert_user_error(*run("export", checkpoints["conv-vae"], "--out", out)[::2], "MLP", "conv", "onnx")
    assert_user_error(*run("export", checkpoints["vae"], "--format", "web", "--part", "both", "--out", out)[::2],
                      "decoder only")
    assert_user_error(*run("export", checkpoints["vae"], "--format", "onnx", "--out", tmp_path / "x.pt2")[::2],
                      "must end in .onnx")
    assert_user_error(*run("export", checkpoints["vae"], "--out", tmp_path / "x.bin")[::2], "--format")
    assert list(tmp_path.iterdir()) == []

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    line = assert_user_error(*run("export", checkpoints["vae"], "--out", tmp_path / "x.onnx")[::2], "onnxscript")
    assert "pip install 'latent-explorer[export]'" in line
    assert list(tmp_path.iterdir()) == []

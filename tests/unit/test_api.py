"""The public Python API without a window: explorer.train/save/load and the adapter that
turns a user's own encoder and decoder into the model contract."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import explorer
from explorer.config import DataConfig, ModelConfig
from explorer.errors import ConfigError, DataError, UserError
from explorer.models.external import ExternalModel
from explorer.training.events import EpochEnd, StepLoss

pytestmark = pytest.mark.usefixtures("single_thread_torch", "cli_module_env")

ROOT = Path(__file__).resolve().parents[2]


def test_import_explorer_loads_neither_torch_nor_qt() -> None:
    code = ("import sys, explorer; assert callable(explorer.view) is not None; "
            "print(sorted(m for m in ('torch', 'numpy', 'PySide6') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", "import sys, explorer; "
                          "print(sorted(m for m in ('torch', 'numpy', 'PySide6') if m in sys.modules))"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
    assert code  # the names resolve on first use (below, in-process)
    assert set(explorer.__all__) == {"Viewer", "direction", "fit_map", "load", "run", "save", "train", "view"}
    with pytest.raises(AttributeError):
        explorer.no_such_name  # noqa: B018


def test_train_save_load_round_trip(tmp_path) -> None:
    events = []
    model = explorer.train("vae", epochs=2, limit=300, latent_dim=2, batch_size=64, seed=3,
                           on_event=events.append)
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] == [1, 2]
    assert any(isinstance(e, StepLoss) for e in events)
    record = model.record
    assert record.history.last_epoch == 2 and record.timeline is not None and len(record.timeline.frames) == 2
    assert record.train_config.seed == 3 and record.data_config.limit == 300
    path = explorer.save(model, tmp_path / "run.safetensors")
    back = explorer.load(path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
    assert back.record.history.epochs == record.history.epochs
    assert len(back.record.timeline.frames) == 2 and back.record.path == path
    # Saving what was loaded keeps everything, under a new name too.
    again = explorer.save(back, tmp_path / "again.safetensors")
    assert explorer.load(again).record.history.epochs == record.history.epochs


def test_train_is_the_same_engine_as_the_cli(tmp_path) -> None:
    """The same seed and settings give the same weights as `latent-explorer train`."""
    from cli_runner import run

    out = tmp_path / "cli.safetensors"
    rc, _, err = run("train", "--model", "ae", "--epochs", 1, "--limit", 200, "--latent-dim", 3,
                     "--batch-size", 50, "--seed", 5, "--no-timeline", "--out", out)
    assert rc == 0, err
    model = explorer.train("ae", epochs=1, limit=200, latent_dim=3, batch_size=50, seed=5, timeline=False)
    cli_model = explorer.load(out)
    for (name, a), b in zip(model.state_dict().items(), cli_model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_train_on_arrays_a_dict_and_a_file(tmp_path, mnist_300) -> None:
    images = mnist_300.train_images[:200, 0].numpy()  # N x H x W uint8
    labels = mnist_300.train_labels[:200].numpy()
    model = explorer.train("cvae", data={"images": images, "labels": labels}, epochs=1, batch_size=50)
    assert model.config.conditional and model.config.num_classes == 10
    assert model.record.data is not None and model.record.data.train_images.shape[1:] == (1, 28, 28)
    np.savez(tmp_path / "digits.npz", images=images.astype(np.float32) / 255, labels=labels)
    from_file = explorer.train("ae", data=tmp_path / "digits.npz", epochs=1, batch_size=50)
    assert from_file.record.data_config.dataset == str(tmp_path / "digits.npz")
    assert from_file.record.data is None, "a file is found again by its name; nothing kept in memory"
    assert explorer.train("ae", data=torch.from_numpy(images), epochs=1, batch_size=50).config.image_shape \
        == (1, 28, 28)
    config = ModelConfig(preset="", variational=False, latent_dim=4, hidden_dims=(32,))
    assert explorer.train(config, data=DataConfig(limit=100), epochs=1).config.latent_dim == 4


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(no_such=1), ConfigError, "no setting 'no_such'"),
    (dict(latent_dim=0), ConfigError, "latent size"),
    (dict(data={"images": np.full((10, 28, 28), 2.0)}), DataError, "[0, 1]"),
    (dict(data={"images": np.zeros((10, 28, 28)), "labels": np.arange(9)}), DataError, "9 labels for 10"),
])
def test_bad_train_arguments_are_one_line(kwargs, error, words) -> None:
    with pytest.raises(error) as info:
        explorer.train("ae", epochs=1, limit=50, **kwargs)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_an_unknown_preset_is_one_line() -> None:
    with pytest.raises(UserError, match="gan"):
        explorer.train("gan", epochs=1)


# -- the adapter -------------------------------------------------------------------------------


def _images(n: int = 6) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_an_encoder_of_flat_images_and_a_logits_decoder_are_adapted() -> None:
    enc = torch.nn.Linear(784, 3)  # takes (N, 784) only: the adapter finds that
    dec = torch.nn.Linear(3, 784)  # logits
    model = ExternalModel(enc, dec, _images(), decoder_logits=True)
    assert model.config.latent_dim == 3 and model.config.image_shape == (1, 28, 28)
    assert not model.is_generative and not model.trainable and not model.storable
    x = _images().float() / 255
    with torch.no_grad():
        z = model.encode(x).mean
        assert torch.allclose(z, enc(x.reshape(6, -1)))
        assert torch.allclose(model.decode(z), torch.sigmoid(dec(z)).reshape(6, 1, 28, 28))
        parts, logits, _ = model.loss_parts(x)
    assert set(parts) == {"recon"} and torch.isfinite(parts["recon"])
    with pytest.raises(UserError, match="no prior"):
        model.sample(2)


def test_plain_functions_and_a_latent_dist_work_too() -> None:
    from explorer.models.base import LatentDist

    model = ExternalModel(lambda x: LatentDist(x.mean((1, 2, 3))[:, None].repeat(1, 2), torch.zeros(len(x), 2)),
                          lambda z: torch.sigmoid(z.sum(1, keepdim=True)).repeat(1, 784), _images())
    assert model.is_generative and model.config.latent_dim == 2
    assert model.sample(3).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("encoder, decoder, words", [
    (lambda x: 1 / 0, lambda z: z, "encoder fails"),
    (lambda x: torch.zeros(len(x), 2), lambda z: 1 / 0, "decoder fails"),
    (lambda x: torch.zeros(len(x), 2), lambda z: torch.full((len(z), 784), float("nan")), "NaN"),
    (lambda x: (torch.zeros(len(x), 2), torch.zeros(len(x), 3)), lambda z: z, "log-variance"),
    (lambda x: torch.zeros(3), lambda z: z, "codes must be"),
    ("not callable", lambda z: z, "called"),
])
def test_unusable_pairs_are_refused_in_one_line(encoder, decoder, words) -> None:
    with pytest.raises(UserError) as info:
        ExternalModel(encoder, decoder, _images())
    assert words in str(info.value) and "\n" not in str(info.value)


def test_save_refuses_an_adapted_pair(tmp_path) -> None:
    model = ExternalModel(lambda x: torch.zeros(len(x), 2), lambda z: torch.zeros(len(z), 784), _images())
    with pytest.raises(UserError, match="cannot be saved"):
        explorer.save(model, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README's Python API section has an example"
    return "\n".join(blocks)


def test_the_readme_example_runs(tmp_path) -> None:
    """The README's example, as written, in a fresh interpreter (the window offscreen; the
    blocking calls close the window once its codes are in)."""
    prelude = textwrap.dedent("""
        import explorer, explorer.api.viewer as _v
        _view = _v.view
        def view(*args, **kwargs):
            kwargs["block"] = False
            viewer = _view(*args, **kwargs)
            assert viewer.wait_until_ready(120), "the window never showed the codes"
            assert viewer.image is not None
            print("viewed", viewer.model.config.latent_dim)
            return viewer
        explorer.view = view
        explorer.run = lambda: [v.close() for v in list(_v._VIEWERS)] and 0
    """)
    script = tmp_path / "example.py"
    script.write_text(prelude + "\n" + _readme_example() + "\nexplorer.run()\nprint('done')\n", encoding="utf-8")
    env = {**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen", "LATENT_EXPLORER_DATA": str(tmp_path / "d"),
           "XDG_CONFIG_HOME": str(tmp_path / "c"), "XDG_DATA_HOME": str(tmp_path / "x"),
           "LATENT_EXPLORER_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "viewed" in out.stdout and out.stdout.strip().endswith("done"), out.stdout

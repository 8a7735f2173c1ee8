"""Model plugins (explorer.plugins): discovery, the contract, training, checkpoints, refusals.

Needs the example plugin installed (``make setup`` does it, or
``pip install -e examples/latent-explorer-vqvae``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch
from cli_runner import assert_user_error, run  # tests/unit is on sys.path (pytest rootdir conftest)
from safetensors import safe_open

from explorer import plugins
from explorer.config import ModelConfig, canonical_params, replace
from explorer.errors import CheckpointError, ConfigError
from explorer.models import build_model, get_preset
from explorer.models.base import LatentDist, LatentModel
from explorer.models.contract import ContractError, check_contract
from explorer.plugins import GROUP, Field, ModelPlugin, PluginError
from explorer.training.batched import architecture_key, can_batch
from explorer.training.checkpoint import load_checkpoint, rewrite_checkpoint

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "latent-explorer-vqvae"


@pytest.fixture(autouse=True)
def _fresh_discovery():
    """Each test discovers afresh and leaves no cached discovery of its fakes behind."""
    plugins._found = None
    yield
    plugins._found = None


@pytest.fixture(scope="module")
def example_installed():
    names = [name for name, _, _ in plugins.installed()]
    if "vqvae" not in names:
        pytest.fail(f"the example plugin is not installed: pip install -e {EXAMPLE} (make setup does it)")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, example_installed) -> Path:
    """A vqvae checkpoint trained by the CLI, as the README says."""
    out = tmp_path_factory.mktemp("vq") / "x.safetensors"
    rc, _, err = run("train", "--model", "vqvae", "--epochs", "1", "--limit", "200", "--out", out)
    assert rc == 0, err
    return out


def _fakes(monkeypatch, *extra: EntryPoint, keep_installed: bool = True) -> None:
    """Discovery reads these entry points (plus the installed ones, unless told not to)."""
    real = plugins._entry_points
    installed = list(real()) if keep_installed else []
    monkeypatch.setattr(plugins, "_entry_points", lambda: [*installed, *extra])
    plugins._found = None


# -- the spec -------------------------------------------------------------------------------


def test_a_field_checks_its_values_and_its_own_default():
    f = Field("size", "int", 8, min=2, max=64, help="how many")
    assert f.check(10) == 10 and f.title == "Size"
    for bad in (1, 65, 3.5, True, "8"):
        with pytest.raises(ConfigError, match="size"):
            f.check(bad)
    assert Field("w", "float", 1).default == 1.0 and isinstance(Field("w", "float", 1).default, float)
    assert Field("on", "bool", False).check(True) is True
    assert Field("act", "choice", "relu", choices=("relu", "elu")).check("elu") == "elu"
    with pytest.raises(ConfigError, match="default"):
        Field("size", "int", 100, max=64)
    with pytest.raises(ConfigError):
        Field("act", "choice", "relu")  # no choices
    with pytest.raises(ConfigError):
        Field("not a name", "int", 1)
    with pytest.raises(ConfigError):
        Field("x", "text", "a")


def test_a_plugin_spec_is_validated_and_gives_its_preset():
    spec = ModelPlugin("toy", "a toy", (Field("width", "int", 16, min=1),), build=lambda c: None,
                       model=ModelConfig(latent_dim=3, variational=False))
    config = spec.config()
    assert (config.preset, config.plugin, config.latent_dim) == ("toy", "toy", 3)
    assert config.params == {"width": 16}
    assert spec.preset().model == config and spec.preset().epochs == 10
    assert spec.config(width=4).plugin_params == '{"width":4}'
    with pytest.raises(ConfigError, match="no setting depth"):
        spec.config(depth=2)
    with pytest.raises(ConfigError):
        ModelPlugin("bad name!", "x", (), build=lambda c: None)
    with pytest.raises(ConfigError):
        ModelPlugin("toy", "x", [Field("a", "int", 1)], build=lambda c: None)  # a list, not a tuple
    with pytest.raises(ConfigError):
        ModelPlugin("toy", "x", (), build="not callable")


def test_model_config_keeps_plugin_fields_only_when_set():
    plain = ModelConfig()
    assert "plugin" not in plain.to_dict() and "plugin_params" not in plain.to_dict()
    assert ModelConfig.from_dict(plain.to_dict()) == plain  # older files (no such fields) load as before
    config = ModelConfig(preset="toy", plugin="toy", plugin_params='{ "b": 1, "a": true }')
    assert config.plugin_params == '{"a":true,"b":1}'  # canonical
    assert ModelConfig.from_json(config.to_json()) == config
    for bad in ({"plugin_params": '{"a": 1}'},  # settings without a plugin
                {"preset": "vae", "plugin": "toy"},  # a plugin's preset is its name
                {"preset": "toy", "plugin": "toy", "plugin_params": "[1, 2]"},
                {"preset": "toy", "plugin": "toy", "plugin_params": '{"a": {"b": 1}}'},
                {"preset": "toy", "plugin": "toy", "plugin_params": "{" * 100_000},
                {"preset": "x y", "plugin": "x y"}):
        with pytest.raises(ConfigError):
            ModelConfig(**bad)


# -- the base class and the contract --------------------------------------------------------


class Tiny(LatentModel):
    """The smallest plugin model: what the README's section shows."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.encoder = torch.nn.Linear(config.input_size, config.latent_dim)
        self.decoder = torch.nn.Linear(config.latent_dim, config.input_size)

    def encode(self, x, y=None):
        return LatentDist(self.encoder(x.flatten(1)))

    def decode_logits(self, z, y=None):
        return self.decoder(z).view(-1, *self.config.image_shape)


def test_latent_model_supplies_the_contract_from_encode_and_decode_logits():
    config = ModelConfig(latent_dim=2, variational=False, sparsity_weight=0.5)
    model = Tiny(config)
    check_contract(model, config)
    assert model.part_names == ("recon", "sparsity")
    out = model(torch.rand(3, 1, 28, 28))
    assert out.loss.shape == () and set(out.parts) == {"recon", "sparsity"}
    assert model.reconstruct(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)
    with pytest.raises(Exception, match="no prior"):
        model.sample(2)


def test_the_contract_checker_names_the_first_broken_promise():
    config = ModelConfig(latent_dim=2, variational=False)

    class WrongShape(Tiny):
        def decode_logits(self, z, y=None):
            return self.decoder(z)  # flat, not image-shaped

    class NotFinite(Tiny):
        def encode(self, x, y=None):
            return LatentDist(self.encoder(x.flatten(1)) * float("inf"))

    class NoConfig(Tiny):
        def __init__(self, config):
            super().__init__(config)
            self.config = ModelConfig()

    with pytest.raises(ContractError, match="decode_logits"):
        check_contract(WrongShape(config), config)
    with pytest.raises(ContractError, match="not finite"):
        check_contract(NotFinite(config), config)
    with pytest.raises(ContractError, match="config"):
        check_contract(NoConfig(config), config)
    with pytest.raises(ContractError, match="nn.Module"):
        check_contract(object(), config)
    model = Tiny(config)
    state = torch.random.get_rng_state()
    check_contract(model, config)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's random state is left alone


# -- discovery and the example plugin --------------------------------------------------------


def test_the_example_plugin_is_listed_and_works(example_installed):
    assert ("vqvae", "latent-explorer-vqvae", "0.1.0") in plugins.installed()
    info = plugins.find("vqvae")
    assert info is not None and info.ok, info
    assert info.distribution == "latent-explorer-vqvae" and info.version == "0.1.0"
    assert "vqvae" in plugins.preset_names()
    preset = get_preset("vqvae")
    assert preset.model.plugin == "vqvae" and preset.model.params["codebook_size"] == 32
    model = build_model(preset.model)
    assert model.part_names == ("recon", "codebook", "commitment")
    assert not can_batch(preset.model)  # plugin runs go one after another through the engine
    assert architecture_key(preset.model).plugin == "vqvae"
    rc, out, err = run("plugins")
    assert rc == 0, err
    assert "vqvae  ok  (latent-explorer-vqvae 0.1.0)" in out and "--set codebook_size=" in out
    rc, out, _ = run("plugins", "--json")
    record = json.loads(out.splitlines()[0])
    assert record["status"] == "ok" and record["settings"][0]["name"] == "codebook_size"


def test_discovery_is_lazy_and_cached(monkeypatch, example_installed):
    calls = []
    real = plugins._entry_points
    monkeypatch.setattr(plugins, "_entry_points", lambda: calls.append(1) or real())
    assert not plugins.loaded()
    plugins.discover()
    plugins.discover()
    get_preset("vqvae")
    assert len(calls) == 1 and plugins.loaded()
    plugins.refresh()
    assert len(calls) == 2


def test_nothing_discovers_at_import_or_for_help(example_installed):
    code = textwrap.dedent("""
        import sys
        import explorer, explorer.config, explorer.presets, explorer.plugins
        from explorer.cli import build_parser
        parser = build_parser()
        assert not explorer.plugins.loaded()
        train = parser._subparsers._group_actions[0].choices["train"]
        text = "".join(train.format_help().split())  # help wraps lines, even inside names
        print("vqvae" in text, "latent-explorer-vqvae" in text, "latent_explorer_vqvae" in sys.modules,
              "torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "False", "False"]


def _write_module(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(body))


BROKEN_CONTRACT = """
    import torch
    from explorer.config import ModelConfig
    from explorer.models.base import LatentDist, LatentModel
    from explorer.plugins import ModelPlugin

    class Flat(LatentModel):
        def __init__(self, config):
            super().__init__(config)
            self.layer = torch.nn.Linear(config.input_size, config.latent_dim)

        def encode(self, x, y=None):
            return LatentDist(self.layer(x.flatten(1)))

        def decode_logits(self, z, y=None):
            return z  # codes, not images: breaks the contract

    PLUGIN = ModelPlugin("flat", "breaks the contract", (), build=Flat, model=ModelConfig(variational=False))
"""


@pytest.fixture
def broken_plugins(tmp_path, monkeypatch, example_installed):
    """Three broken plugins beside the working example: one fails to import, one gives a
    wrong object, one's model breaks the contract."""
    _write_module(tmp_path, "raises_on_import", "raise RuntimeError('boom at import')\n")
    _write_module(tmp_path, "wrong_object", "PLUGIN = {'name': 'wrong'}\n")
    _write_module(tmp_path, "breaks_contract", BROKEN_CONTRACT)
    monkeypatch.syspath_prepend(str(tmp_path))
    _fakes(monkeypatch,
           EntryPoint("boom", "raises_on_import:PLUGIN", GROUP),
           EntryPoint("wrong", "wrong_object:PLUGIN", GROUP),
           EntryPoint("flat", "breaks_contract:PLUGIN", GROUP))


def test_broken_plugins_are_listed_as_broken_and_the_others_work(broken_plugins, tmp_path):
    infos = {i.name: i for i in plugins.discover()}
    assert infos["vqvae"].ok
    assert not infos["boom"].ok and "cannot be imported" in infos["boom"].error and "boom at import" in \
        infos["boom"].error
    assert not infos["wrong"].ok and "not an explorer.plugins.ModelPlugin" in infos["wrong"].error
    assert not infos["flat"].ok and "breaks the contract" in infos["flat"].error
    for info in infos.values():
        assert "\n" not in info.line()
    rc, out, err = run("plugins")
    assert rc == 0, err
    lines = out.splitlines()
    assert any(line.startswith("boom  BROKEN") for line in lines)
    assert any(line.startswith("flat  BROKEN") for line in lines)
    assert any(line.startswith("vqvae  ok") for line in lines)
    # A broken plugin is refused in one line; the working one still trains.
    with pytest.raises(PluginError, match="broken"):
        get_preset("flat")
    rc, _, err = run("train", "--model", "boom", "--out", tmp_path / "b.safetensors")
    assert_user_error(rc, err, "boom", "broken")
    rc, _, err = run("train", "--model", "vqvae", "--epochs", "1", "--limit", "100", "--no-timeline",
                     "--out", tmp_path / "ok.safetensors")
    assert rc == 0, err


def test_a_plugin_whose_name_clashes_or_differs_is_broken(tmp_path, monkeypatch, example_installed):
    _write_module(tmp_path, "misnamed", BROKEN_CONTRACT)  # calls itself "flat"
    monkeypatch.syspath_prepend(str(tmp_path))
    _fakes(monkeypatch, EntryPoint("other", "misnamed:PLUGIN", GROUP), EntryPoint("vae", "misnamed:PLUGIN", GROUP))
    infos = {i.name: i for i in plugins.discover()}
    assert "calls itself flat" in infos["other"].error
    assert "built-in preset" in infos["vae"].error
    assert get_preset("vae").model.plugin == ""  # the built-in one still


# -- training and checkpoints ------------------------------------------------------------------


def test_train_writes_a_checkpoint_naming_the_plugin(trained):
    with safe_open(str(trained), "pt") as fh:
        metadata = fh.metadata()
    assert json.loads(metadata["model_plugin"]) == {"name": "vqvae", "distribution": "latent-explorer-vqvae",
                                                    "version": "0.1.0"}
    config = json.loads(metadata["model_config"])
    assert config["plugin"] == "vqvae" and config["preset"] == "vqvae"
    assert json.loads(config["plugin_params"])["codebook_size"] == 32
    assert all(not v.startswith("latent_explorer_vqvae") for v in metadata.values())  # no code is named


def test_the_checkpoint_opens_and_a_view_decodes(trained, tmp_path):
    ckpt = load_checkpoint(trained)
    model = ckpt.build_model()
    assert type(model).__name__ == "VQVAE" and not model.training
    assert ckpt.history.part_names == ("recon", "codebook", "commitment")
    with torch.no_grad():
        images = model.decode(torch.zeros(4, 2))
    assert images.shape == (4, 1, 28, 28) and bool(((images >= 0) & (images <= 1)).all())
    # The timeline kept the decoder (with its codebook), so a replay decodes each epoch.
    assert ckpt.timeline is not None and ckpt.timeline.frames[-1].decoder
    rc, _, err = run("reconstruct", trained, "--n", "4", "--out", tmp_path / "r.npy")
    assert rc == 0, err
    rc, _, err = run("timeline", trained, "--manifold", "--out", tmp_path / "f.gif")
    assert rc == 0, err
    rc, out, err = run("encode", trained, "--out", tmp_path / "codes.npy")
    assert rc == 0, err


def test_the_checkpoint_without_its_plugin_is_refused_in_one_line(trained, monkeypatch):
    _fakes(monkeypatch, keep_installed=False)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(trained)
    assert str(info.value) == ("x.safetensors needs the model plugin 'vqvae' from the package "
                               "'latent-explorer-vqvae' (not installed): pip install latent-explorer-vqvae")
    rc, _, err = run("reconstruct", trained, "--n", "4", "--out", trained.parent / "no.npy")
    assert_user_error(rc, err, "pip install latent-explorer-vqvae")


def _with_metadata(src: Path, dst: Path, **changes: str) -> Path:
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), "pt") as fh:
        metadata = dict(fh.metadata())
    metadata.update(changes)
    save_file(load_file(str(src)), str(dst), metadata=metadata)
    return dst


def test_a_file_never_makes_anything_import(trained, tmp_path, monkeypatch):
    """A file naming an importable module as its plugin (and a hostile package name) is
    refused without importing it: only installed entry points are looked up."""
    _write_module(tmp_path, "trap_module", "import sys\nsys.modules['trap_was_imported'] = sys\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = json.loads(load_checkpoint(trained).model_config.to_json())
    config.update(preset="trap_module", plugin="trap_module")
    record = json.dumps({"name": "trap_module", "distribution": "evil; rm -rf ~", "version": "1"})
    bad = _with_metadata(trained, tmp_path / "trap.safetensors", model_config=json.dumps(config),
                         model_plugin=record)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad)
    message = str(info.value)
    assert message.startswith("trap.safetensors needs the model plugin 'trap_module'")
    assert "pip install" not in message and "rm -rf" not in message
    assert "trap_module" not in sys.modules and "trap_was_imported" not in sys.modules


def test_plugin_settings_a_file_stores_are_checked_by_the_plugin(trained, tmp_path):
    ckpt = load_checkpoint(trained)
    for params, words in (({"codebook_size": 10**9}, "at most"), ({"colour": 1}, "no setting colour")):
        config = json.loads(ckpt.model_config.to_json())
        config["plugin_params"] = canonical_params({**ckpt.model_config.params, **params})
        bad = _with_metadata(trained, tmp_path / "p.safetensors", model_config=json.dumps(config))
        with pytest.raises(CheckpointError, match="invalid config") as info:
            load_checkpoint(bad)
        assert words in str(info.value)


def test_settings_missing_from_a_file_take_their_defaults(trained, tmp_path):
    ckpt = load_checkpoint(trained)
    config = json.loads(ckpt.model_config.to_json())
    params = ckpt.model_config.params
    del params["activation"]  # as a file of an older version of the plugin would lack it
    config["plugin_params"] = canonical_params(params)
    older = _with_metadata(trained, tmp_path / "older.safetensors", model_config=json.dumps(config))
    assert load_checkpoint(older).model_config.params["activation"] == "relu"


def test_a_rewrite_keeps_the_plugin_record(trained, tmp_path):
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(trained.read_bytes())
    rewrite_checkpoint(copy, lambda ckpt: {"evaluations": []})
    with safe_open(str(copy), "pt") as fh:
        assert json.loads(fh.metadata()["model_plugin"])["distribution"] == "latent-explorer-vqvae"
    assert load_checkpoint(copy).model_config.plugin == "vqvae"


def test_train_takes_plugin_settings(tmp_path, example_installed):
    out = tmp_path / "s.safetensors"
    rc, _, err = run("train", "--model", "vqvae", "--set", "codebook_size=8", "--set", "two_layers=true",
                     "--set", "activation=elu", "--latent-dim", "4", "--set", "group_size=2", "--epochs", "1",
                     "--limit", "100", "--no-timeline", "--out", out)
    assert rc == 0, err
    config = load_checkpoint(out).model_config
    assert config.latent_dim == 4
    assert config.params == {"codebook_size": 8, "two_layers": True, "activation": "elu", "group_size": 2,
                             "commitment": 0.25, "hidden": 400}
    rc, _, err = run("train", "--model", "vqvae", "--set", "codebook_size=1", "--out", out)
    assert_user_error(rc, err, "codebook_size", "at least 2")
    rc, _, err = run("train", "--model", "vae", "--set", "codebook_size=8", "--out", out)
    assert_user_error(rc, err, "built-in preset")
    rc, _, err = run("train", "--model", "vqvae", "--latent-dim", "3", "--set", "group_size=2", "--out", out)
    assert_user_error(rc, err, "does not split")


def test_unknown_presets_name_the_plugins(example_installed):
    with pytest.raises(ConfigError, match="model plugins: vqvae"):
        get_preset("nope")
    config = replace(get_preset("vqvae").model, latent_dim=4)
    assert build_model(config).config.latent_dim == 4

"""Runs of one architecture trained together (explorer.training.batched) and sweeps
(explorer.training.sweep): the batched step computes each run's own function, one Adam over
stacked tensors is R Adams, runs keep their own seeds, betas and guards, and a sweep writes
its checkpoints and tables without ever overwriting."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.atomic import WriteError
from explorer.config import DataConfig, ModelConfig, TrainConfig, replace
from explorer.data.dataset import ImageData, to_float
from explorer.errors import ConfigError
from explorer.models import build_model, config_for_data
from explorer.training.batched import (
    LECTURE_COMPARISON,
    RunEvent,
    StackedAutoencoders,
    make_stacked_optimizer,
    train_together,
    unstack,
)
from explorer.training.checkpoint import load_checkpoint, save_checkpoint
from explorer.training.engine import run_to_end, train
from explorer.training.events import EpochEnd, RunStarted, Snapshot
from explorer.training.sweep import group_runs, plan_sweep, run_sweep

pytestmark = pytest.mark.usefixtures("single_thread_torch")

SMALL = ModelConfig(preset="vae", latent_dim=4, hidden_dims=(32,))
CFG = TrainConfig(epochs=2, batch_size=64, device="cpu", precision="fp32", log_every=2)


def _model(data: ImageData, seed: int = 0, **changes) -> torch.nn.Module:
    torch.manual_seed(seed)  # as prepare_run builds a run's initial weights
    return build_model(config_for_data(replace(SMALL, **changes), data.image_shape, data.num_classes))


def _ends(events: list[RunEvent], run: int) -> list[EpochEnd]:
    return [e.event for e in events if e.run == run and isinstance(e.event, EpochEnd)]


def test_stacked_adam_equals_independent_adams() -> None:
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(3, 5, 4, generator=gen)
    x = torch.randn(3, 8, 4, generator=gen)
    t = torch.randn(3, 8, 5, generator=gen)
    stacked = w0.clone().requires_grad_(True)
    opt = make_stacked_optimizer([stacked], 1e-2)
    singles = [w0[r].clone().requires_grad_(True) for r in range(3)]
    opts = [torch.optim.Adam([w], lr=1e-2, fused=True) for w in singles]
    for _ in range(25):
        opt.zero_grad()
        ((torch.bmm(x, stacked.transpose(1, 2)) - t) ** 2).sum().backward()
        opt.step()
        for r in range(3):
            opts[r].zero_grad()
            ((x[r] @ singles[r].T - t[r]) ** 2).sum().backward()
            opts[r].step()
    for r in range(3):
        assert torch.allclose(stacked[r].detach(), singles[r].detach(), atol=1e-6, rtol=0)
    assert not torch.allclose(stacked[0], w0[0])


def test_one_batched_step_is_each_runs_own_loss_and_gradient(mnist_300: ImageData) -> None:
    models = [_model(mnist_300, 0, beta=0.5), _model(mnist_300, 1, beta=2.0, recon_weight=0.3)]
    stacked = StackedAutoencoders(models)
    b = 16
    idx = torch.stack([torch.arange(0, b), torch.arange(100, 100 + b)])
    xb = to_float(mnist_300.train_images[idx])
    eps = []
    for r in range(2):
        torch.manual_seed(10 + r)
        eps.append(torch.randn(b, SMALL.latent_dim))
    loss, parts = stacked.parts(xb, eps=torch.stack(eps))
    loss.sum().backward()
    for r, model in enumerate(models):
        model.train()
        torch.manual_seed(10 + r)  # the single model's sample() draws the same noise
        out = model(xb[r])
        out.loss.backward()
        assert torch.allclose(loss[r], out.loss, atol=1e-5, rtol=1e-6)
        for k in out.parts:
            assert torch.allclose(parts[k][r], out.parts[k], atol=1e-5, rtol=1e-6)
        for k, p in model.named_parameters():
            assert torch.allclose(stacked.row(k, stacked.params[k].grad, r), p.grad, atol=1e-5, rtol=1e-4), k


def test_recon_weight_zero_leaves_only_the_kl(mnist_300: ImageData) -> None:
    model = _model(mnist_300, recon_weight=0.0, beta=1.0)
    model.train()
    out = model(to_float(mnist_300.train_images[:32]))
    assert torch.allclose(out.loss, out.parts["kl"])
    assert out.parts["recon"] > 100
    stacked = StackedAutoencoders([model, _model(mnist_300)])
    loss, parts = stacked.parts(to_float(mnist_300.train_images[:64]).view(2, 32, 1, 28, 28))
    assert torch.allclose(loss[0], parts["kl"][0])
    assert torch.allclose(loss[1], parts["recon"][1] + parts["kl"][1])


def test_old_configs_load_with_recon_weight_one() -> None:
    data = SMALL.to_dict()
    del data["recon_weight"]
    assert ModelConfig.from_dict(data).recon_weight == 1.0
    with pytest.raises(ConfigError):
        replace(SMALL, recon_weight=-1.0)


def test_train_together_matches_engine_runs(mnist_300: ImageData) -> None:
    betas = (0.1, 8.0)
    models = [_model(mnist_300, seed, beta=beta) for seed, beta in zip((0, 1), betas)]
    cfgs = [replace(CFG, seed=0), replace(CFG, seed=1)]
    events, results = run_to_end(train_together(models, mnist_300, cfgs))
    assert [r.status for r in results] == ["completed", "completed"]
    assert all(isinstance(e, RunEvent) for e in events)
    assert sum(isinstance(e.event, RunStarted) for e in events) == 2
    for run, beta in enumerate(betas):
        alone = _model(mnist_300, run, beta=beta)
        single, _ = run_to_end(train(alone, mnist_300, cfgs[run]))
        single_end = [e for e in single if isinstance(e, EpochEnd)][-1]
        together_end = _ends(events, run)[-1]
        for k, v in single_end.test.items():
            assert together_end.test[k] == pytest.approx(v, rel=1e-3, abs=1e-3), (run, k)
        # the models were trained in place, and the snapshots carry their weights
        snap = [e.event for e in events if e.run == run and isinstance(e.event, Snapshot)][-1]
        assert set(snap.state_dict) == set(alone.state_dict())
        for k, v in models[run].state_dict().items():
            assert torch.allclose(v, alone.state_dict()[k], atol=1e-4), k
    kl = [_ends(events, r)[-1].test["kl"] for r in range(2)]
    assert kl[0] > 2 * kl[1]  # beta 8 squeezes the code


def test_kl_only_collapses_to_the_prior_and_reconstruction_only_does_not(mnist_300: ImageData) -> None:
    models = [_model(mnist_300, 0, **overrides) for _, overrides in LECTURE_COMPARISON]
    cfg = replace(CFG, epochs=30, lr=3e-3, log_every=10)
    events, results = run_to_end(train_together(models, mnist_300, cfg))
    assert all(r.status == "completed" for r in results)
    kl = {name: _ends(events, run)[-1].test["kl"] for run, (name, _) in enumerate(LECTURE_COMPARISON)}
    assert kl["KL only"] < 0.5
    assert kl["reconstruction only"] > 10
    assert kl["reconstruction only"] > kl["reconstruction + KL"] > kl["KL only"]


def test_a_diverging_run_stops_alone(mnist_300: ImageData) -> None:
    cfg = replace(CFG, epochs=1)
    good = [_model(mnist_300, 0), _model(mnist_300, 2, beta=2.0)]
    bad = _model(mnist_300, 1)
    with torch.no_grad():
        bad.decoder.out.weight[0, 0] = float("nan")
    models = [good[0], bad, good[1]]
    _, results = run_to_end(train_together(models, mnist_300, [replace(cfg, seed=s) for s in (0, 1, 2)]))
    assert [r.status for r in results] == ["completed", "diverged", "completed"]
    assert "NaN" in results[1].message
    ref = [_model(mnist_300, 0), _model(mnist_300, 2, beta=2.0)]
    run_to_end(train_together(ref, mnist_300, [replace(cfg, seed=s) for s in (0, 2)]))
    for mine, theirs in zip(good, ref):  # the others trained as if the bad run had never been there
        for k, v in mine.state_dict().items():
            assert torch.allclose(v, theirs.state_dict()[k], atol=1e-5), k


def test_mixed_architectures_are_refused(mnist_300: ImageData) -> None:
    with pytest.raises(ConfigError, match="architecture"):
        run_to_end(train_together([_model(mnist_300), _model(mnist_300, latent_dim=2)], mnist_300, CFG))
    with pytest.raises(ConfigError, match="seed and the learning rate"):
        run_to_end(train_together([_model(mnist_300), _model(mnist_300)], mnist_300,
                                  [CFG, replace(CFG, batch_size=32)]))


def test_unstacked_models_round_trip_through_checkpoints(mnist_300: ImageData, tmp_path: Path) -> None:
    stacked = StackedAutoencoders([_model(mnist_300, 0, beta=0.5), _model(mnist_300, 1, beta=3.0)])
    models = unstack(stacked)
    for r, model in enumerate(models):
        path = save_checkpoint(tmp_path / f"run{r}.safetensors", model, DataConfig(limit=300), CFG)
        loaded = load_checkpoint(path)
        assert loaded.model_config.beta == model.beta
        for k, v in loaded.build_model().state_dict().items():
            assert torch.equal(v, stacked.row(k, stacked.params[k], r).detach()), k


def test_conv_models_fall_back_to_one_after_another(mnist_300: ImageData) -> None:
    small = mnist_300.limited(64)
    conv = ModelConfig(preset="conv-vae", family="conv", latent_dim=2, conv_channels=(4,), hidden_dims=(8,))
    models = []
    for seed, beta in ((0, 1.0), (1, 4.0)):
        torch.manual_seed(seed)
        models.append(build_model(config_for_data(replace(conv, beta=beta), small.image_shape, small.num_classes)))
    events, results = run_to_end(train_together(models, small, replace(CFG, epochs=1, batch_size=32)))
    assert [r.status for r in results] == ["completed", "completed"]
    assert [len(_ends(events, r)) for r in range(2)] == [1, 1]


def test_plan_sweep_groups_by_architecture() -> None:
    plan = plan_sweep("vae", betas=[0.1, 1, 4], latent_dims=[2, 20], epochs=1)
    assert [r.name for r in plan[:3]] == ["vae-beta0.1-z2", "vae-beta1-z2", "vae-beta4-z2"]
    groups = group_runs(plan)
    assert [len(g) for g in groups] == [3, 3]
    assert {r.model_config.latent_dim for r in groups[1]} == {20}
    lecture = plan_sweep("vae", lecture=True, seeds=(0, 1))
    assert len(lecture) == 6 and len(group_runs(lecture)) == 1
    assert {(r.model_config.beta, r.model_config.recon_weight) for r in lecture} == {(0.0, 1.0), (1.0, 0.0), (1.0, 1.0)}
    with pytest.raises(ConfigError):
        plan_sweep("vae", lecture=True, betas=[1])


def test_run_sweep_writes_checkpoints_and_tables_and_never_overwrites(mnist_300: ImageData, tmp_path: Path) -> None:
    plan = plan_sweep("vae", betas=[0.5, 2], latent_dims=[2, 3], epochs=1, batch_size=100, device="cpu",
                      precision="fp32")
    plan = [replace(r, model_config=replace(r.model_config, hidden_dims=(32,))) for r in plan]
    out = tmp_path / "sweep"
    seen = []
    summary = run_sweep(plan, DataConfig(limit=300), out, on_event=lambda run, e: seen.append(run.name),
                        data=mnist_300)
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{r.name}.safetensors" for r in plan]
                                                           + ["sweep.json", "summary.csv", "summary.md"])
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert [r["name"] for r in rows] == [r.name for r in plan]
    assert all(math.isfinite(float(r["test_loss"])) and r["status"] == "completed" for r in rows)
    assert {r["trained_together"] for r in rows} == {"2"}
    md = (out / "summary.md").read_text()
    best = min(rows, key=lambda r: float(r["test_loss"]))
    assert f"**{best['test_loss']}**" in md and md.count("**") == 2
    assert load_checkpoint(out / rows[0]["checkpoint"]).model_config.beta == 0.5
    assert len(summary.rows) == 4 and set(seen) == {r.name for r in plan}
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(WriteError, match="already holds"):
        run_sweep(plan, DataConfig(limit=300), out, data=mnist_300)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_benchmark_runs_on_tiny_settings() -> None:
    spec = importlib.util.spec_from_file_location("sweep_benchmark", Path(__file__).parents[2] / "benchmarks/sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    buf = io.StringIO()
    with redirect_stdout(buf):
        module.main(["--limit", "200", "--betas", "1,4", "--json", "--precision", "fp32", "--threads", "1"])
    report = json.loads(buf.getvalue())
    assert report["sequential_s"] > 0 and report["together_s"] > 0 and report["ratio"] > 0
    assert report["test_loss_together"] == pytest.approx(report["test_loss_sequential"], rel=1e-3)


@pytest.mark.parametrize("preset", ["vae", "cvae"])
def test_each_run_of_a_group_reports_the_test_metrics_its_own_model_gets(mnist_300: ImageData, preset: str) -> None:
    from explorer.training.evaluate import evaluate_tensors

    models = [_model(mnist_300, seed, preset=preset, beta=beta) for seed, beta in ((0, 0.5), (1, 4.0))]
    cfgs = [replace(CFG, epochs=1, seed=3), replace(CFG, epochs=1, seed=7)]
    events, results = run_to_end(train_together(models, mnist_300, cfgs))
    assert [r.status for r in results] == ["completed", "completed"]
    for run, (model, cfg) in enumerate(zip(models, cfgs)):
        reported = _ends(events, run)[-1].test
        alone = evaluate_tensors(model, mnist_300.test_images, mnist_300.test_labels, cfg.eval_batch_size,
                                 seed=cfg.seed)
        assert reported == alone
    assert _ends(events, 0)[-1].test["loss"] != _ends(events, 1)[-1].test["loss"]


def test_runs_of_a_group_each_take_their_own_learning_rate(mnist_300: ImageData) -> None:
    from explorer.training.events import StepLoss

    models = [_model(mnist_300, seed) for seed in (0, 1, 2)]
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]
    rates = (1e-3, 1e-6, 3e-3)
    cfgs = [replace(CFG, seed=s, lr=lr, epochs=1) for s, lr in zip((0, 1, 2), rates)]
    events, results = run_to_end(train_together(models, mnist_300, cfgs))
    assert [r.status for r in results] == ["completed"] * 3
    reported = {e.run: e.event.lr for e in events if isinstance(e.event, StepLoss)}
    assert reported == dict(enumerate(rates))
    # Adam moves each weight by about its rate a step: the order of the rates is the order of the moves
    moved = [max(float((v - before[r][k]).abs().max()) for k, v in models[r].state_dict().items()) for r in range(3)]
    assert moved[1] < 1e-4 < moved[0] < moved[2]


def test_a_grid_of_learning_rates_is_one_group_with_a_name_per_rate() -> None:
    plan = plan_sweep("vae", betas=[1.0], lrs=[1e-3, 3e-3], epochs=1)
    assert [run.name for run in plan] == ["vae-beta1-z20-lr0.001", "vae-beta1-z20-lr0.003"]
    assert [run.train_config.lr for run in plan] == [1e-3, 3e-3]
    assert len(group_runs(plan)) == 1
    assert [run.train_config.lr for run in plan_sweep("vae", betas=[1.0, 2.0], lr=5e-4)] == [5e-4, 5e-4]


@pytest.mark.parametrize("family", ["mlp", "conv"])
def test_every_run_of_a_sweep_saves_its_own_timeline(mnist_300: ImageData, tmp_path: Path, family: str) -> None:
    # MLP runs train together (one batched step), conv runs one after another: both record
    # a frame per epoch for each run, from that run's own weights
    plan = plan_sweep("vae" if family == "mlp" else "conv-vae", betas=[0.5, 4], epochs=2, batch_size=100,
                      device="cpu", precision="fp32")
    small = {"hidden_dims": (16,)} if family == "mlp" else {"hidden_dims": (8,), "conv_channels": (4,)}
    plan = [replace(r, model_config=replace(r.model_config, **small)) for r in plan]
    out = tmp_path / "sweep"
    frames = []
    run_sweep(plan, DataConfig(limit=300), out, data=mnist_300,
              on_event=lambda run, e: frames.append(run.name) if type(e).__name__ == "TimelineFrame" else None)
    assert sorted(frames) == sorted([r.name for r in plan] * 2)
    timelines = [load_checkpoint(out / f"{r.name}.safetensors").timeline for r in plan]
    for timeline in timelines:
        assert timeline is not None and [f.epoch for f in timeline.frames] == [1, 2]
        assert all(np.isfinite(f.coords).all() and "test_loss" in f.losses for f in timeline.frames)
    assert not np.array_equal(timelines[0].frames[-1].coords, timelines[1].frames[-1].coords)
    assert timelines[0].frames[-1].losses != timelines[1].frames[-1].losses


def test_a_sweep_without_timelines_saves_none(mnist_300: ImageData, tmp_path: Path) -> None:
    plan = plan_sweep("vae", betas=[0.5, 4], epochs=1, batch_size=100, device="cpu", precision="fp32")
    plan = [replace(r, model_config=replace(r.model_config, hidden_dims=(16,)),
                    train_config=replace(r.train_config, timeline=False)) for r in plan]
    run_sweep(plan, DataConfig(limit=300), tmp_path / "sweep", data=mnist_300)
    assert all(load_checkpoint(tmp_path / "sweep" / f"{r.name}.safetensors").timeline is None for r in plan)

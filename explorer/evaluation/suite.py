"""One evaluation of one model on one dataset, whatever asks for it: the CLI's
``evaluate``, the window's Evaluation view, a test.

A request names groups of metrics (:class:`explorer.evaluation.metrics.Group`). Asked for
alone (``strict``), a group that cannot apply to this model or data refuses in one line
(a plain autoencoder has no likelihood); as part of "everything" it is skipped and the
record's notes say why. Progress is reported as a fraction of the whole, weighted by each
stage's rough cost, with the stage's name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from explorer import cancellation
from explorer.analysis.latent_metrics import active_units, label_efficiency, reconstruction_quality
from explorer.analysis.latents import encode_images
from explorer.data.dataset import ImageData
from explorer.display import with_article
from explorer.errors import UserError
from explorer.evaluation.metrics import Group
from explorer.evaluation.record import Evaluation
from explorer.models.autoencoder import Autoencoder
from explorer.models.losses import kl_per_dimension
from explorer.training import evaluate as training_evaluate

ALL_GROUPS = frozenset(Group)
DEFAULT_IW_K = 1000
DEFAULT_SAMPLES = 10_000
TEST_SPLIT = "test"
_HASH_CHUNK = 4096  # images per update: bounded extra memory on a memory-mapped folder

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class EvaluationRequest:
    groups: frozenset[Group] = frozenset({Group.LOSS})
    iw_k: int = DEFAULT_IW_K
    n_samples: int = DEFAULT_SAMPLES
    seed: int = 0
    strict: bool = True  # False: skip what cannot apply, with a note, instead of refusing


@dataclass(frozen=True)
class Subject:
    """What is evaluated: the names a record keeps with its numbers."""

    dataset: str
    binarize: str = "none"
    step: int = 0
    loss_seed: int = 0  # the seed training evaluated its test loss with, so both agree


def _stage_weights(model: Autoencoder, data: ImageData, request: EvaluationRequest) -> dict[Group, float]:
    """Rough relative costs, in decoder passes over an image, so the bar moves evenly."""
    n_test = data.test_images.shape[0]
    weights = {Group.LOSS: n_test, Group.RECON: n_test, Group.LATENT: data.train_images.shape[0] + 2 * n_test,
               Group.SAMPLES: 3 * request.n_samples + n_test, Group.LIKELIHOOD: n_test * request.iw_k}
    return {g: float(w) for g, w in weights.items() if g in request.groups}


def evaluate_model(model: Autoencoder, data: ImageData, request: EvaluationRequest, subject: Subject,
                   progress: Progress | None = None) -> Evaluation:
    """Every metric ``request`` asks for, on ``data``'s test split (and its training split
    where a metric needs labelled codes or a floor)."""
    started = time.perf_counter()
    weights = _stage_weights(model, data, request)
    total = sum(weights.values()) or 1.0
    done = 0.0
    metrics: dict[str, float] = {}
    details: dict[str, list[float]] = {}
    notes: list[str] = []
    iw_k = n_samples = 0

    def stage(group: Group, label: str) -> Callable[[int, int], None]:
        def report(part: int, whole: int) -> None:
            if progress is not None:
                progress(min(1.0, (done + weights[group] * part / max(whole, 1)) / total), label)
        report(0, 1)
        return report

    def skip_or_refuse(exc: UserError, what: str) -> None:
        if request.strict:
            raise exc
        notes.append(f"{what} skipped: {exc}")

    was_training = model.training
    model.eval()
    try:
        if Group.LOSS in request.groups:
            stage(Group.LOSS, "Test loss")
            values = training_evaluate.evaluate_tensors(model, data.test_images, data.test_labels,
                                                        seed=subject.loss_seed)
            metrics["test_loss"] = values["loss"]
            metrics.update({k: v for k, v in values.items() if k != "loss"})
            done += weights[Group.LOSS]
        if Group.RECON in request.groups:
            stage(Group.RECON, "Reconstructions")
            metrics.update(reconstruction_quality(model, data.test_images, data.test_labels))
            done += weights[Group.RECON]
        if Group.LATENT in request.groups:
            report = stage(Group.LATENT, "Latent space")
            metrics_l, details_l, notes_l = _latent_metrics(model, data, request.seed, report)
            metrics.update(metrics_l)
            details.update(details_l)
            notes += notes_l
            done += weights[Group.LATENT]
        if Group.SAMPLES in request.groups:
            report = stage(Group.SAMPLES, "Sample quality")
            try:
                values, n_samples = _sample_metrics(model, data, subject, request, report)
                details.update({k: v for k, v in values.items() if isinstance(v, list)})
                metrics.update({k: v for k, v in values.items() if isinstance(v, float)})
            except UserError as exc:
                skip_or_refuse(exc, "Sample quality")
            done += weights[Group.SAMPLES]
        if Group.LIKELIHOOD in request.groups:
            report = stage(Group.LIKELIHOOD, f"Log-likelihood (K={request.iw_k:,})")
            try:
                metrics.update(_likelihood(model, data, request, report, notes))
                iw_k = request.iw_k
            except UserError as exc:
                skip_or_refuse(exc, "Log-likelihood")
            done += weights[Group.LIKELIHOOD]
    finally:
        model.train(was_training)
    if progress is not None:
        progress(1.0, "Done")
    return Evaluation(dataset=subject.dataset, binarize=subject.binarize, step=subject.step, metrics=metrics,
                      details=details, notes=tuple(notes), iw_k=iw_k, n_samples=n_samples,
                      seconds=time.perf_counter() - started,
                      groups=tuple(g.value for g in Group if g in request.groups),
                      split=TEST_SPLIT, n_images=int(data.test_images.shape[0]),
                      fingerprint=fingerprint_of_test_set(data))


def fingerprint_of_test_set(data: ImageData) -> str:
    """A short hash of the test split as measured: its shape, every image's bytes (after
    binarisation, class filter and limit) and its labels. Two records with the same
    fingerprint were measured on the same images; it costs one pass over uint8 bytes, far
    less than the test loss's pass through the model."""
    digest = hashlib.blake2b(digest_size=8)
    images = data.test_images
    digest.update(repr((tuple(images.shape), str(images.dtype))).encode())
    for start in range(0, images.shape[0], _HASH_CHUNK):
        digest.update(images[start:start + _HASH_CHUNK].detach().cpu().contiguous().numpy().tobytes())
    if data.test_labels is not None:
        digest.update(b"labels")
        digest.update(data.test_labels.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


def covers(record: Evaluation, request: EvaluationRequest) -> bool:
    """Whether ``record`` already answers ``request`` (every group asked for, and the
    likelihood with at least as many samples)."""
    asked = {g.value for g in request.groups}
    if not asked <= set(record.groups):
        return False
    return Group.LIKELIHOOD not in request.groups or "iw_nll" not in record.metrics or record.iw_k >= request.iw_k


def _likelihood(model: Autoencoder, data: ImageData, request: EvaluationRequest,
                report: Callable[[int, int], None], notes: list[str]) -> dict[str, float]:
    from explorer.analysis.likelihood import check_likelihood_model, iw_log_likelihood, likelihood_notes

    check_likelihood_model(model)
    notes += likelihood_notes(data.test_images)
    log_px = iw_log_likelihood(model, data.test_images, data.test_labels, request.iw_k, seed=request.seed,
                               progress=report)
    nll = -log_px
    se = float(nll.std(ddof=1) / np.sqrt(nll.size)) if nll.size > 1 else 0.0
    return {"iw_nll": float(nll.mean()), "iw_se": se}


def _latent_metrics(model: Autoencoder, data: ImageData, seed: int, report: Callable[[int, int], None]
                    ) -> tuple[dict[str, float], dict[str, list[float]], list[str]]:
    metrics: dict[str, float] = {}
    details: dict[str, list[float]] = {}
    notes: list[str] = []
    test_means, test_logvars = encode_images(model, data.test_images, data.test_labels)
    report(1, 4)
    if test_logvars is not None:
        metrics["active_units"] = float(active_units(test_means.numpy()))
        details["kl_per_dim"] = [float(v) for v in kl_per_dimension(test_means, test_logvars)]
    else:
        notes.append("Active units are defined for the VAE family (posterior means against a unit prior); "
                     "a plain autoencoder has none")
    if not data.has_labels:
        notes.append("k-NN and linear-probe accuracy need class labels; this dataset has none")
        return metrics, details, notes
    cancellation.check()
    train_means, _ = encode_images(model, data.train_images, data.train_labels)
    report(2, 4)
    metrics.update(label_efficiency(train_means.numpy(), data.train_labels.numpy(),  # type: ignore[union-attr]
                                    test_means.numpy(), data.test_labels.numpy(), seed=seed))  # type: ignore[union-attr]
    report(4, 4)
    return metrics, details, notes


def _sample_metrics(model: Autoencoder, data: ImageData, subject: Subject, request: EvaluationRequest,
                    report: Callable[[int, int], None]) -> tuple[dict, int]:
    from explorer.analysis.classifier import classifier_for
    from explorer.analysis.fid import sample_quality

    if not model.is_generative:
        raise UserError(f"{with_article(model.config.preset or 'plain')} autoencoder has no prior to sample from, "
                        "so sample quality (FID) needs a VAE-family model")
    # Another dataset's classifier is trained once (minutes on a CPU) and cached: its own
    # progress shows as the first part of this stage.
    classifier, _ = classifier_for(data, subject.dataset, progress=lambda done, total: report(done, 2 * total))
    binary = subject.binarize != "none"
    compared = data
    if data.binarize_train:  # the floor compares binary training images with the binary test split
        from explorer.data.binarize import TRAIN_SEED, binarize

        n_floor = min(request.n_samples, data.train_images.shape[0])
        compared = dataclasses.replace(data, train_images=binarize(data.train_images[:n_floor], TRAIN_SEED),
                                       train_labels=None if data.train_labels is None
                                       else data.train_labels[:n_floor], binarize_train=False)
    with torch.no_grad():
        values = sample_quality(model, compared, classifier, n=request.n_samples, seed=request.seed,
                                progress=report, binary=binary)
    return values, int(values.get("n_samples", request.n_samples))

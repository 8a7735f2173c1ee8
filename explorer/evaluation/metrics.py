"""Every number the evaluation reports, declared once: its key, what it measures, which
way is better and a reference figure to read it against.

The CLI's ``--json`` keys, the Evaluation view's columns and header tooltips, the CSV and
Markdown exports and the "best per column" marks all read this table, so a new metric is
one row here plus the code that computes it in :mod:`explorer.evaluation.suite`. The best
of a column is picked only among rows measured on the same test set
(:func:`best_rows_within`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from enum import Enum


class Better(Enum):
    LOWER = "lower"
    HIGHER = "higher"
    NEITHER = "neither"  # a description (a count, a floor), not a score


class Group(str, Enum):
    """What can be asked for alone (``evaluate --iw``, ``--samples``, ``--latent``, ``--recon``)."""

    LOSS = "loss"
    LIKELIHOOD = "likelihood"
    SAMPLES = "samples"
    LATENT = "latent"
    RECON = "recon"


@dataclass(frozen=True)
class MetricSpec:
    key: str
    title: str  # a column header: short
    unit: str
    better: Better
    group: Group
    what: str  # one or two sentences: what it measures
    reference: str = ""  # a figure to compare with, and where it comes from
    error_key: str = ""  # the key of its standard error, shown as "value ± error"
    percent: bool = False  # a fraction shown as a percentage


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("test_loss", "Test loss", "nats", Better.LOWER, Group.LOSS,
               "The training objective on the test split, per image: the negative ELBO (one posterior sample, "
               "seeded) for the VAE family, the summed reconstruction loss for plain autoencoders.",
               "The negative ELBO bounds the NLL from above: it is never below IW NLL."),
    MetricSpec("recon", "Recon term", "nats", Better.LOWER, Group.LOSS,
               "The reconstruction part of the test loss (summed BCE or squared error per image)."),
    MetricSpec("kl", "KL term", "nats", Better.NEITHER, Group.LOSS,
               "KL(q(z|x) || p(z)) per test image: the information the codes carry, in nats."),
    MetricSpec("iw_nll", "IW NLL", "nats", Better.LOWER, Group.LIKELIHOOD,
               "Negative log-likelihood -log p(x) per test image, importance-weighted with K posterior samples "
               "(Burda et al. 2015); a likelihood only on binary images.",
               "IWAE paper, Table 1: 86.76 nats for a 784-200-200-50 VAE trained with k=1 (3,280 passes, "
               "dynamically binarised MNIST, K=5000).", error_key="iw_se"),
    MetricSpec("iw_se", "IW NLL s.e.", "nats", Better.NEITHER, Group.LIKELIHOOD,
               "Standard error of the mean IW NLL over the test images."),
    MetricSpec("fid", "FID (LeNet)", "", Better.LOWER, Group.SAMPLES,
               "Fréchet distance between the LeNet features of 10,000 samples from the prior and of the test "
               "images.", "The FID floor (training against test images) is the best a model can expect."),
    MetricSpec("fid_floor", "FID floor", "", Better.NEITHER, Group.SAMPLES,
               "The same distance between training and test images: what sampling noise alone gives."),
    MetricSpec("class_accuracy", "Class accuracy", "", Better.HIGHER, Group.SAMPLES,
               "Conditional models: how often the classifier names the class a sample was drawn for.",
               "The classifier's own accuracy on real test images is the ceiling.", percent=True),
    MetricSpec("active_units", "Active units", "", Better.HIGHER, Group.LATENT,
               "Latent dimensions whose posterior mean varies across the test images by more than 0.01 "
               "(Burda et al. 2015); the others carry nothing.",
               "IWAE paper: 19-20 of 50 units active for a VAE trained with k=1 on MNIST."),
    MetricSpec("knn_acc_100", "k-NN, 100 labels", "", Better.HIGHER, Group.LATENT,
               "Test accuracy of 5-nearest-neighbour voting among the codes of 100 labelled training images "
               "(10 per class, seeded).", percent=True),
    MetricSpec("knn_acc_1000", "k-NN, 1,000 labels", "", Better.HIGHER, Group.LATENT,
               "The same with 1,000 labelled training codes (100 per class).", percent=True),
    MetricSpec("knn_acc_all", "k-NN, all labels", "", Better.HIGHER, Group.LATENT,
               "The same with every training code.",
               "Raw MNIST pixels: about 97% (5-NN, Euclidean; LeCun et al.).", percent=True),
    MetricSpec("probe_acc_100", "Probe, 100 labels", "", Better.HIGHER, Group.LATENT,
               "Test accuracy of a linear (logistic-regression) probe on the codes of 100 labelled training "
               "images.", percent=True),
    MetricSpec("probe_acc_1000", "Probe, 1,000 labels", "", Better.HIGHER, Group.LATENT,
               "The same probe fitted on 1,000 labelled codes.", percent=True),
    MetricSpec("probe_acc_all", "Probe, all labels", "", Better.HIGHER, Group.LATENT,
               "The same probe fitted on every training code.",
               "Raw MNIST pixels: about 92% (a linear classifier; LeCun et al.).", percent=True),
    MetricSpec("recon_mse", "Recon MSE", "per pixel", Better.LOWER, Group.RECON,
               "Mean squared error per pixel (intensities 0-1) of the mean-code reconstructions of the test set."),
    MetricSpec("psnr", "PSNR", "dB", Better.HIGHER, Group.RECON,
               "Peak signal-to-noise ratio of those reconstructions, averaged over the test images.",
               "About 20 dB is a recognisable MNIST reconstruction; exact copies are infinite."),
)

BY_KEY: dict[str, MetricSpec] = {m.key: m for m in METRICS}
# The columns of a comparison: every metric but those shown inside another's cell.
COLUMNS: tuple[MetricSpec, ...] = tuple(m for m in METRICS if m.key not in {x.error_key for x in METRICS})


def format_value(spec: MetricSpec, value: float | None, error: float | None = None) -> str:
    """A metric as a table cell reads it."""
    if value is None:
        return ""
    if spec.percent:
        return f"{100 * value:.1f}%"
    if spec.key == "active_units":
        return f"{value:.0f}"
    if not math.isfinite(value):
        text = "∞" if value > 0 else ("-∞" if value < 0 else "n/a")
    elif abs(value) >= 1000:
        text = f"{value:,.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.4g}"
    if error is not None:
        text += f" ± {error:.2g}"
    return text


def best_rows(values: list[float | None], spec: MetricSpec) -> set[int]:
    """The rows holding the best value of a column (all of them on a tie); none for a
    column that is not a score, or with fewer than two values to compare."""
    present = [(i, v) for i, v in enumerate(values) if v is not None]
    if spec.better is Better.NEITHER or len(present) < 2:
        return set()
    pick = min if spec.better is Better.LOWER else max
    best = pick(v for _, v in present)
    return {i for i, v in present if v == best}


def best_rows_within(values: Sequence[float | None], groups: Sequence[Hashable | None], spec: MetricSpec) -> set[int]:
    """:func:`best_rows` within each group of rows (rows measured on the same test set):
    rows of different groups are never ranked against each other, and a row whose group
    is None (its test set unknown) against none."""
    members: dict[Hashable, list[int]] = {}
    for i, group in enumerate(groups):
        if group is not None:
            members.setdefault(group, []).append(i)
    best: set[int] = set()
    for rows in members.values():
        best |= {rows[j] for j in best_rows([values[i] for i in rows], spec)}
    return best

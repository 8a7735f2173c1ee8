"""What a new user sees after one epoch of the default model: clusters on the plane, and a
drag from one cluster to another that morphs one digit into the other."""

from __future__ import annotations

import numpy as np
import torch

from explorer.analysis.interpolation import lerp
from explorer.analysis.latents import latent_stats
from explorer.analysis.manifold import decode_codes
from explorer.config import DataConfig
from explorer.data import to_float
from explorer.training.engine import run_to_end, train
from explorer.training.runs import model_config_for, prepare_run, train_config_for


def knn_accuracy(codes: np.ndarray, labels: np.ndarray, queries: int = 2000, k: int = 5) -> float:
    q, ref, ref_y = codes[:queries], codes[queries:], labels[queries:]
    distance = ((q[:, None, :] - ref[None, :, :]) ** 2).sum(-1)
    nearest = np.argpartition(distance, k, axis=1)[:, :k]
    votes = np.array([np.bincount(ref_y[row], minlength=10).argmax() for row in nearest])
    return float((votes == labels[:queries]).mean())


def test_one_epoch_of_the_default_vae_gives_visible_clusters_and_morphs(bundled_mnist, single_thread_torch):
    run = prepare_run(model_config_for("vae", latent_dim=2), DataConfig(), train_config_for("vae", epochs=1),
                      data=bundled_mnist)
    run_to_end(train(run.model, run.data, run.train_config))
    model = run.model.eval()
    stats = latent_stats(model, bundled_mnist.test_images, bundled_mnist.test_labels)
    # Clusters: a test code's nearest neighbours mostly share its digit (chance is 10%).
    assert knn_accuracy(stats.codes, stats.labels) > 0.35

    # Dragging from the 0s to the 1s: the decoded image starts nearest the average 0 and
    # ends nearest the average 1, and passes through something that is neither end.
    centroid = {k: stats.codes[stats.labels == k].mean(0) for k in (0, 1)}
    path = decode_codes(model, lerp(centroid[0], centroid[1], 9))
    average = {k: to_float(bundled_mnist.test_images[bundled_mnist.test_labels == k]).mean(0).numpy()
               for k in (0, 1)}

    def nearest_digit(image: np.ndarray) -> int:
        return min(average, key=lambda k: float(((image - average[k]) ** 2).mean()))

    assert nearest_digit(path[0]) == 0 and nearest_digit(path[-1]) == 1
    middle = path[4]
    assert np.abs(middle - path[0]).mean() > 0.03 and np.abs(middle - path[-1]).mean() > 0.03
    assert torch.isfinite(torch.from_numpy(path)).all()

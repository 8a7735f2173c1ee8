"""Words that agree with what they name (an ae autoencoder, 1 training step, colour levels),
the window's one line when there is no display, and a refitted plane that keeps its
orientation (issue #26)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from explorer.analysis.projection import PlaneAxes, aligned_plane, pca_axes
from explorer.display import article, plural, with_article


@pytest.mark.parametrize(("word", "expected"), [
    ("ae", "an ae"), ("vae", "a vae"), ("beta-vae", "a beta-vae"), ("conv-vae", "a conv-vae"), ("cvae", "a cvae"),
    ("dae", "a dae"), ("plain", "a plain"), ("custom", "a custom"), ("int", "an int"), ("MLP", "an MLP"),
    ("onnx", "an onnx"), ("uint8", "a uint8"), ("unused", "an unused"), ("Autoencoder", "an Autoencoder"),
])
def test_the_article_follows_the_sound_of_the_word(word, expected):
    assert with_article(word) == expected
    assert article(word) == expected.split()[0]


def test_counts_agree_with_their_nouns():
    assert [plural(n, "step") for n in (0, 1, 2, 1000)] == ["0 steps", "1 step", "2 steps", "1,000 steps"]
    assert plural(1, "epoch") == "1 epoch" and plural(3, "epoch") == "3 epochs"
    assert plural(2, "entry") == "2 entries" and plural(2, "class") == "2 classes"
    assert plural(2, "batch", "batches") == "2 batches"


def test_refusals_name_the_model_with_the_right_article():
    from explorer.analysis.likelihood import check_likelihood_model
    from explorer.errors import UserError
    from explorer.models import build_model, config_for_data, get_preset

    ae = build_model(config_for_data(get_preset("ae").model, (1, 28, 28), 10))
    with pytest.raises(UserError, match=r"^an ae autoencoder has no prior"):
        check_likelihood_model(ae)


def test_the_likelihood_note_says_colour_levels_for_colour_images():
    from explorer.analysis.likelihood import likelihood_notes

    rng = np.random.default_rng(0)
    grey = torch.from_numpy(rng.integers(0, 256, (20, 1, 8, 8), dtype=np.uint8))
    colour = torch.from_numpy(rng.integers(0, 256, (20, 3, 8, 8), dtype=np.uint8))
    (grey_note,) = likelihood_notes(grey)
    (colour_note,) = likelihood_notes(colour)
    assert "grey levels" in grey_note and "colour" not in grey_note
    assert "colour levels" in colour_note and "grey" not in colour_note


def test_the_window_without_a_display_says_so_in_one_line_and_exits_2(tmp_path):
    """Qt's xcb plugin aborts the process (status 134, a core dump) when it finds no display."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    for argv in (["gui"], []):
        done = subprocess.run([sys.executable, "-m", "explorer", *argv], env=env, capture_output=True, text=True,
                              timeout=120)
        if not sys.platform.startswith("linux"):
            pytest.skip("the check is for Linux's X11/Wayland platforms")
        assert done.returncode == 2, done.stderr
        assert done.stderr == ("latent-explorer: error: no display found (DISPLAY is not set); run it in a desktop "
                               "session, or under Xvfb: xvfb-run latent-explorer\n")
        assert done.stdout == ""


def test_the_display_check_passes_with_any_display_or_a_named_platform():
    from explorer.app import missing_display

    assert missing_display({}, "linux") is not None
    assert missing_display({"DISPLAY": ":0"}, "linux") is None
    assert missing_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert missing_display({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert missing_display({}, "darwin") is None and missing_display({}, "win32") is None


def _codes(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((500, 6)) * np.array([3.0, 2.0, 1.0, 0.5, 0.2, 0.1]) + 1.0


def test_a_sign_flipped_refit_is_turned_back_to_the_plane_shown():
    codes = _codes()
    first = pca_axes(codes)
    flipped_basis = first.basis.copy()
    flipped_basis[0] *= -1  # the arbitrary sign of a principal axis came out the other way
    flipped = PlaneAxes(first.origin, flipped_basis, first.names, first.explained)
    for points in (first.project(codes), None):  # by the same points, or by the axes alone
        aligned = aligned_plane(flipped, codes, first, points)
        np.testing.assert_allclose(aligned.basis[:2], first.basis[:2], atol=1e-9)
        np.testing.assert_allclose(aligned.project(codes), first.project(codes), atol=1e-9)
        np.testing.assert_allclose(aligned.basis @ aligned.basis.T, np.eye(6), atol=1e-9)
        np.testing.assert_allclose(aligned.explained, first.explained, atol=1e-12)


def test_mirrored_codes_keep_the_picture_and_the_way_back_stays_exact():
    codes = _codes()
    first = pca_axes(codes)
    mirrored = -codes  # the model's codes came out mirrored: pca_axes fixes signs, the picture would flip
    refit = pca_axes(mirrored)
    np.testing.assert_allclose(refit.project(mirrored), -first.project(codes), atol=1e-9)
    aligned = aligned_plane(refit, mirrored, first, first.project(codes))
    np.testing.assert_allclose(aligned.project(mirrored), first.project(codes), atol=1e-9)
    point = np.array([0.3, -0.7])
    np.testing.assert_allclose(aligned.project(aligned.lift(point, mirrored[0])), point, atol=1e-5)


def test_swapped_axes_of_similar_variance_are_swapped_back():
    rng = np.random.default_rng(5)
    codes = rng.standard_normal((800, 4)) * np.array([2.0, 1.99, 0.3, 0.1])
    first = pca_axes(codes)
    swapped = PlaneAxes(first.origin, first.basis[[1, 0, 2, 3]], first.names,
                        None if first.explained is None else first.explained[::-1])
    aligned = aligned_plane(swapped, codes, first, first.project(codes))
    np.testing.assert_allclose(aligned.project(codes), first.project(codes), atol=1e-9)
    np.testing.assert_allclose(aligned.explained, first.explained, atol=1e-12)

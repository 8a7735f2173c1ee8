"""Paths between two codes: straight lines, and great circles for Gaussian priors.

White (2016, "Sampling generative networks") shows that a straight line between two codes
of a high-dimensional Gaussian passes through its improbable centre; the spherical path
keeps the norm typical. ``centre`` is the point the sphere is taken around: the prior's
origin for a VAE, the data's mean code for a plain autoencoder.
"""

from __future__ import annotations

import numpy as np


def lerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """(steps, D) codes from ``a`` to ``b`` inclusive."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return ((1 - t) * np.asarray(a, np.float64) + t * np.asarray(b, np.float64)).astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, steps: int, centre: np.ndarray | None = None) -> np.ndarray:
    """(steps, D) codes along the great circle from ``a`` to ``b`` around ``centre``
    (the radius changes linearly along the way, so unequal norms are handled)."""
    centre = np.zeros_like(a, dtype=np.float64) if centre is None else np.asarray(centre, np.float64)
    u, v = np.asarray(a, np.float64) - centre, np.asarray(b, np.float64) - centre
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu < 1e-12 or nv < 1e-12:
        return lerp(a, b, steps)
    cos = float(np.clip(np.dot(u / nu, v / nv), -1.0, 1.0))
    omega = np.arccos(cos)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    if omega < 1e-6 or np.pi - omega < 1e-6:  # same or opposite directions: no unique arc
        return lerp(a, b, steps)
    direction = (np.sin((1 - t) * omega) * u / nu + np.sin(t * omega) * v / nv) / np.sin(omega)
    radius = (1 - t) * nu + t * nv
    return (centre + radius * direction).astype(np.float32)


def interpolate(a: np.ndarray, b: np.ndarray, steps: int, mode: str = "linear",
                centre: np.ndarray | None = None) -> np.ndarray:
    if steps < 2:
        raise ValueError("an interpolation needs at least two steps")
    if mode == "linear":
        return lerp(a, b, steps)
    if mode == "spherical":
        return slerp(a, b, steps, centre)
    raise ValueError(f"unknown interpolation {mode!r}: use linear or spherical")

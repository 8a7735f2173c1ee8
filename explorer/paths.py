"""Where the app keeps files: the user's cache and data directories, never the install folder."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_path, user_data_path

APP_NAME = "latent-explorer"
RESOURCES = Path(__file__).resolve().parent / "resources"


def cache_dir() -> Path:
    """Unpacked bundled data; safe to delete. ``LATENT_EXPLORER_CACHE`` overrides it (tests)."""
    override = os.environ.get("LATENT_EXPLORER_CACHE")
    return Path(override) if override else user_cache_path(APP_NAME)


def data_dir() -> Path:
    """Downloaded datasets. ``LATENT_EXPLORER_DATA`` overrides it."""
    override = os.environ.get("LATENT_EXPLORER_DATA")
    return Path(override) if override else user_data_path(APP_NAME)

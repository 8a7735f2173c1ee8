"""The public Python API: what the CLI, the window and notebooks share.

``load``/``save`` checkpoints as model objects, ``train`` with the engine, ``view`` a model
(or your own encoder and decoder) in the window, ``run`` the window's event loop,
``direction`` a named direction in a model's code space.
"""

from explorer.api.directions import direction
from explorer.api.files import load, save
from explorer.api.maps import fit_map
from explorer.api.training import train
from explorer.api.viewer import Viewer, run, view

__all__ = ["Viewer", "direction", "fit_map", "load", "run", "save", "train", "view"]

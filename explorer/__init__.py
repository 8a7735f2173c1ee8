"""Latent Explorer: train autoencoders, then see and touch what they learned.

Everything in this package except :mod:`explorer.gui` is plain PyTorch and never imports Qt.
"""

__version__ = "0.1.0"

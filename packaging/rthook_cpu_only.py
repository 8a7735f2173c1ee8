# PyInstaller runtime hook of the lean (default) bundle, which leaves out the CUDA libraries
# that torch loads only when it uses a GPU (cuDNN's engines, cuSOLVER, ...; see the spec).
# Hide every GPU before torch is imported, so the app always trains on the CPU instead of
# failing half-way into a GPU run that needs a missing library. A bundle built with
# LATENT_EXPLORER_BUNDLE_CUDA=1 keeps all CUDA libraries and does not use this hook.
import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""

"""The Qt layer: renders state and forwards user intent; all heavy work lives in explorer.*."""

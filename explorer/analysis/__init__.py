"""Analysis on trained models: grids, latent codes, statistics (no Qt)."""

"""Training engine, control, events, evaluation and checkpoints (no Qt)."""

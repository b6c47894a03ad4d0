"""Training, prediction and checkpoints."""

"""Training: patch sampling, augmentation, the loop, checkpoints."""

"""Training: losses usable by any model, the learned sorter, the trainer."""

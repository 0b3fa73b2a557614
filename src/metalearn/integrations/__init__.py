"""Experiment trackers behind extras: Weights & Biases and MLflow, imported only when asked for."""

"""Hyper-parameter search with Optuna: studies, search spaces, pruning."""

"""Evaluation: one module per kind of evaluation (adaptation curves, grouped tables, learned
optimizers), the statistics they share (``stats``), comparisons of runs and predictions from a run.
"""

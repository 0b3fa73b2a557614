"""Metric-based meta-learning: Prototypical Networks (Snell et al. 2017)."""

"""Optimizee problems for learned optimizers (Andrychowicz et al. 2016): random quadratics and small MLPs."""

"""Regression task families: the sinusoid of Finn et al. (2017)."""

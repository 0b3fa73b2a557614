"""Federated meta-learning on Flower: the strategies' local steps and evaluation (``fedmeta``),
Flower's Message-API apps, their components and deployment.
"""

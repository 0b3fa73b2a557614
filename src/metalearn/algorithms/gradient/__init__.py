"""Gradient-based meta-learning: MAML and its family (first order, ANIL, Meta-SGD, MAML++, momentum) and Reptile."""

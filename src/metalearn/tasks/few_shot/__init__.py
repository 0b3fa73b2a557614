"""Few-shot classification: N-way K-shot episodes from images held as uint8 tensors (Omniglot, MNIST, a
user's folders).
"""

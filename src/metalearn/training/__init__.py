"""Meta-training: the trainer loop, building it from a config, several processes (``torchrun``) and
CUDA-graph capture.
"""

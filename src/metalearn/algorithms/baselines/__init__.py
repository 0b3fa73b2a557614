"""Transfer baselines: one network pretrained jointly on all tasks, fine-tuned at test time, and from-
scratch training.
"""

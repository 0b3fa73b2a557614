"""Reinforcement-learning task families: environments whose goals or physics vary, sampled episodes,
advantages and the worker processes that step them.
"""

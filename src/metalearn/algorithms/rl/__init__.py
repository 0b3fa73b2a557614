"""Meta-reinforcement learning: MAML-TRPO (Finn et al. 2017), ProMP (Rothfuss et al. 2019) and the TRPO outer step."""

"""Federated clients: natural groups of tasks (Omniglot alphabets, a table's groups), one client each."""

"""Utilities every layer may use: seeding, atomic file writes, thread counts."""

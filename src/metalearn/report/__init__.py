"""Reports: pictures a person can look at (training curves, tasks before and after adaptation, steps,
groups) and a summary.
"""

"""Experiments: one script per question, each runnable as ``python -m experiments.<name>``."""

"""TEMPORARY: replaced by scorch/layout.py at merge."""
TENSORBOARD = "tensorboard"
HISTORY = "history.csv"

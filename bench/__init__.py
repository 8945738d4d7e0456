"""scorch against what a user would otherwise write, in one run: ``python -m bench``.

See docs/benchmarks.md for the latest table and how to read it.
"""

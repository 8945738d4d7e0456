"""Experiments around runs: SLURM scripts of scorch-train (``slurm``), sweeps (``sweep``, ``sweepfile``)
and comparing runs (``report``).
"""

"""The run directory: the names of its files (``layout``, the only module that knows them), the directory
and its rank-0 files (``directory``), one writer per run (``lock``), checkpoints (``checkpoint``) and
``load_run`` (``load_run``).
"""

"""The user's files: loading and checking the model and dataset files against the contract
(``userfiles``), and config files and ``--set`` overrides (``overrides``).
"""

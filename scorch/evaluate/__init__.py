"""Evaluation: whole-split outputs gathered in dataset order (``outputs``), a checkpoint on a split
(``evaluation``), and scorch-test's run rebuilt from its directory (``eval_run``).
"""

SPLITS = ("test", "valid")  # what scorch-test evaluates (here, so that its --help does without torch)

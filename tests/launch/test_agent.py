"""scorch's own launch (the agent side), pure parts."""
from scorch.launch.agent import child_argv


def test_child_argv_drops_launch_flags_and_pins_the_name():
    argv = ["--model", "m.py", "--nproc-per-node", "2", "--master-port=1234", "--epochs", "3"]
    assert child_argv(argv, "run1") == ["--model", "m.py", "--epochs", "3", "--name", "run1"]

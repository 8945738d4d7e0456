import threading

from scorch.callbacks.progress import Progress


def test_no_helper_thread_outlives_or_accompanies_a_bar():
    # DataLoader workers are forked right after a bar closes; a thread being torn down at that
    # moment can deadlock the forked worker (CPython 3.11), so bars must not start threads.
    before = set(threading.enumerate())
    for enabled in (True, False):
        bar = Progress(enabled, 5, "epoch")
        for _ in range(5):
            bar.step()
        assert set(threading.enumerate()) == before
        bar.close()
    assert set(threading.enumerate()) == before

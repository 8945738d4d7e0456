"""Benchmark: Cache.get(n) against np.load of one .npz holding the same arrays.

    .venv/bin/python bench/gen_cache.py            # 200k samples, prints a table
    .venv/bin/python bench/gen_cache.py --tiny     # a second; what the test runs

Samples are written by the real chunk writer (chunks of --save-every, as
generation jobs do), moved into groups by the real move, then read back:
warm page cache, each read and the baseline timed in turn, median of repeats.
Target: every get(n) within 1.5x of np.load of one file with the same n samples.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scorch.gen import UNASSIGNED, Cache, ParamSetDir, move, param_set_dir, publish_chunk

TARGET = 1.5


def _fill(ps: ParamSetDir, n: int, width: int, save_every: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, width))
    y = rng.standard_normal(n)
    for lo in range(0, n, save_every):
        hi = min(lo + save_every, n)
        publish_chunk(ps, {"X": X[lo:hi], "y": y[lo:hi], "time": np.full(hi - lo, 1e-3),
                           "uid": np.array([f"bench-{i}" for i in range(lo, hi)])})
    return X, y


def _timed(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median ms per function; the functions take turns so load noise hits all alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm the page cache
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def run(n: int, width: int, save_every: int, repeats: int, root: Path) -> list[tuple[str, int, int, float]]:
    """Rows (label, files, samples, median ms); the first row is the baseline."""
    ps = param_set_dir(root, "bench", "0" * 12)
    ps.ensure("bench", {})
    X, y = _fill(ps, n, width, save_every)
    k = n // 4
    baseline = root / "one.npz"
    np.savez(baseline, X=X[:k], y=y[:k])
    move(ps, k, "one_move")  # the oldest k samples: X[:k], like the baseline file
    for _ in range(10):
        move(ps, k // 10, "ten_moves")
    group = Cache(root)["bench"][0]
    cases = {
        "np.load one .npz (baseline)": (1, lambda: _load(baseline)),
        "get(n), group from 1 move": (len(ps.chunks("one_move")), lambda: group["one_move"].get(k)),
        "get(n), group from 10 moves": (len(ps.chunks("ten_moves")),
                                        lambda: group["ten_moves"].get(k // 10 * 10)),
        f"get(n), unassigned ({save_every}/chunk)": (len(ps.chunks(UNASSIGNED)),
                                                     lambda: group[UNASSIGNED].get(ps.count(UNASSIGNED))),
    }
    sizes = {"np.load one .npz (baseline)": k, "get(n), group from 1 move": k,
             "get(n), group from 10 moves": k // 10 * 10}
    sizes[list(cases)[-1]] = ps.count(UNASSIGNED)
    got, _ = group["one_move"].get(k)
    assert np.array_equal(got, X[:k]), "get returned the wrong samples"
    ms = _timed({label: fn for label, (_, fn) in cases.items()}, repeats)
    return [(label, files, sizes[label], ms[label]) for label, (files, _) in cases.items()]


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return f["X"], f["y"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="small sizes, few repeats (for tests)")
    p.add_argument("-n", type=int, default=200_000, help="samples generated")
    p.add_argument("--width", type=int, default=32, help="float64 values per x")
    p.add_argument("--save-every", type=int, default=1000, help="samples per generated chunk")
    p.add_argument("--repeats", type=int, default=21)
    args = p.parse_args(argv)
    if args.tiny:
        args.n, args.width, args.save_every, args.repeats = 4_000, 8, 100, 3
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
        rows = run(args.n, args.width, args.save_every, args.repeats, Path(tmp))
    _base_label, _, base_n, base_ms = rows[0]
    print(f"scorch-gen cache read: {args.width} float64 per x + 1 label; chunks of "
          f"{args.save_every}; median of {args.repeats}")
    print(f"{'read':34} {'files':>5} {'samples':>8} {'ms':>8} {'per 1k':>7} {'vs np.load':>10}")
    worst = 0.0
    for label, files, k, ms in rows:
        ratio = (ms / k) / (base_ms / base_n)  # per sample, against the one-file load
        if label.startswith("get(n), group"):
            worst = max(worst, ratio)
        print(f"{label:34} {files:5d} {k:8d} {ms:8.2f} {ms / k * 1e3:7.3f} {ratio:9.2f}x")
    verdict = "ok" if worst <= TARGET else "OVER"
    if args.tiny:
        verdict += " (tiny: files of a few kB, per-file overhead dominates; the target is for the default sizes)"
    print(f"worst group get(n) / np.load: {worst:.2f}x (target <= {TARGET}x): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

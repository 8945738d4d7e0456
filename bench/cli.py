"""The bench's command line: run the sections, write ``<out>/<date>.json`` and the markdown."""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from . import _report, _sections
from ._work import REPO

DEFAULT_OUT = REPO / "bench" / "results"
DOCS = REPO / "docs" / "benchmarks.md"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--tiny", action="store_true", help="a few seconds per section: checks that the bench runs (tests)")
    p.add_argument("--quick", action="store_true", help="each section once on shortened work (< 3 min): checks a change")
    p.add_argument("--only", action="append", choices=list(_sections.SECTIONS), help="run only this section (repeatable)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"directory for <date>.json (default: {DEFAULT_OUT})")
    p.add_argument("--docs", type=Path, help=f"markdown output (default: {DOCS} for a full run, OUT/benchmarks.md otherwise)")
    p.add_argument("--reps", type=int, help="repetitions per variant (default: 5, tiny 1)")
    p.add_argument("--render", type=Path, metavar="JSON", help="only re-render the markdown from a results file")
    args = p.parse_args(argv)
    if args.render is not None:
        docs = args.docs or DOCS
        docs.write_text(_report.render(json.loads(args.render.read_text())))
        print(f"wrote {docs}", file=sys.stderr)
        return 0

    plan = _sections.plan(args.tiny, args.reps, args.quick)
    names = args.only or list(_sections.SECTIONS)
    full = not args.tiny and not args.quick and not args.only and args.out == DEFAULT_OUT
    docs = args.docs or (DOCS if full else args.out / "benchmarks.md")
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="scorch-bench-"))

    def log(msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    date = time.strftime("%Y-%m-%dT%H-%M-%S")
    result = {
        "date": date, "tiny": args.tiny, "quick": args.quick, "notes": plan.notes,
        "machine": {
            "cpus": os.cpu_count(), "cpu": _cpu_name(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "omp_threads": 1, "shared": "other people's test runs shared the machine",
            "load_before": os.getloadavg()[0],
        },
        "sections": {},
    }
    started = time.perf_counter()
    try:
        for name in names:
            log(f"{name} ...")
            result["sections"][name] = _sections.safe(name, plan, tmp, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["machine"]["load_after"] = os.getloadavg()[0]
    result["total_s"] = time.perf_counter() - started
    path = args.out / f"{date}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(_report.render(result))
    log(f"wrote {path} and {docs} in {result['total_s']:.0f} s")
    failed = [n for n, s in result["sections"].items() if "failed" in s]
    if failed:
        log(f"failed sections: {', '.join(failed)}")
    return 1 if failed else 0

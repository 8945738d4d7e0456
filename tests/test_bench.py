"""The bench runs end to end in its tiny mode and writes its JSON and markdown (no timings asserted)."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import REPO, env


def test_bench_tiny_writes_json_and_markdown(tmp_path):
    out = tmp_path / "results with space"
    proc = subprocess.run([sys.executable, "-m", "bench", "--tiny", "--out", str(out)], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]

    (result_file,) = out.glob("*.json")
    result = json.loads(result_file.read_text())
    assert result["tiny"] is True
    assert result["machine"]["cpus"] >= 1
    sections = result["sections"]
    assert set(sections) == {"loop", "distributed", "checkpoint", "startup", "gpu", "compile", "sharding"}
    for name, section in sections.items():
        assert "failed" not in section, (name, section)

    small = sections["loop"]["works"]["small"]
    assert {"raw", "scorch", "scorch-ema", "scorch-step"} <= set(small["median_step_s"])  # scorch-step: the custom step
    assert isinstance(small["ema_overhead"], float)  # --ema's time per step against scorch's
    assert small["variants"][-1] == "scorch-step" and small["step_ratio_to_scorch"] > 0
    assert small["ratio_to_raw"]["raw"] == 1.0
    assert all(len(runs) == 1 for runs in small["runs"].values())
    for work in ("small", "cnn"):  # whole-process time and peak memory of every run
        runs = sections["loop"]["works"][work]["runs"]
        assert all(r["wall_s"] > 0 and r["maxrss_mb"] > 50 for rs in runs.values() for r in rs), work
    cnn = sections["loop"]["works"]["cnn"]["runs"]["scorch"][0]
    assert cnn["worker_maxrss_mb"] > 0  # its two DataLoader workers were counted
    compiled = sections["compile"]["works"]["small"]
    assert set(compiled["median_step_s"]) == {"raw", "scorch"} and all(compiled["median_compile_s"].values())

    dist = sections["distributed"]["worlds"]["2"]
    assert {"ddp", "scorch-torch"} <= set(dist["median_samples_per_s"])
    assert sections["checkpoint"]["median_s"].keys() == {"torch.save", "torch.save+fsync", "scorch.save", "torch.load", "scorch.load"}
    assert set(sections["startup"]["median_s"]) >= {"raw", "scorch-cli"}
    sharding = sections["sharding"]["worlds"]["2"]
    assert set(sharding["median_maxrss_mb"]) == {"strategy-ddp", "strategy-fsdp", "strategy-fsdp-ac"}
    assert all(v > 50 for v in sharding["median_maxrss_mb"].values())
    assert set(sections["sharding"]["checkpoint"]["median_s"]) == {"full save", "full load", "sharded save", "sharded load",
                                                                   "read whole"}
    gpu = sections["gpu"]
    assert "skipped" in gpu or "device_name" in gpu

    markdown = (out / "benchmarks.md").read_text()
    for heading in ("## 1. Loop", "## Targets", "## 2. Distributed on CPU", "## 3. Checkpoint", "## 4. Start-up", "## 5. GPU",
                    "## 6. `--compile`", "## 7. Sharded training"):
        assert heading in markdown
    assert "| small MLP, batch 64 |" in markdown and "| CNN on 3x32x32 (augmented in __getitem__, 2 workers)" in markdown
    assert "| small MLP, batch 64 | " in markdown and "| scorch-step |" in markdown and "Custom step (**scorch-step**" in markdown

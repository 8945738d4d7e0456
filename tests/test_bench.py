"""The bench runs end to end in its tiny mode and writes its JSON and markdown (no timings asserted)."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import REPO, env


def test_bench_tiny_writes_json_and_markdown(tmp_path):
    out = tmp_path / "results with space"
    proc = subprocess.run([sys.executable, "-m", "bench", "--tiny", "--out", str(out)], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    (result_file,) = out.glob("*.json")
    result = json.loads(result_file.read_text())
    assert result["tiny"] is True
    assert result["machine"]["cpus"] >= 1
    sections = result["sections"]
    assert set(sections) == {"loop", "distributed", "checkpoint", "startup", "gpu"}
    for name, section in sections.items():
        assert "failed" not in section, (name, section)

    small = sections["loop"]["works"]["small"]
    assert {"raw", "scorch"} <= set(small["median_step_s"])
    assert small["ratio_to_raw"]["raw"] == 1.0
    assert all(len(runs) == 1 for runs in small["runs"].values())

    dist = sections["distributed"]["worlds"]["2"]
    assert {"ddp", "scorch-torch"} <= set(dist["median_samples_per_s"])
    assert sections["checkpoint"]["median_s"].keys() == {"torch.save", "torch.save+fsync", "scorch.save", "torch.load", "scorch.load"}
    assert set(sections["startup"]["median_s"]) >= {"raw", "scorch-cli"}
    gpu = sections["gpu"]
    assert "skipped" in gpu or "device_name" in gpu

    markdown = (out / "benchmarks.md").read_text()
    for heading in ("## 1. Loop overhead", "## 2. Distributed on CPU", "## 3. Checkpoint", "## 4. Start-up", "## 5. GPU"):
        assert heading in markdown
    assert "| small MLP, batch 64 |" in markdown

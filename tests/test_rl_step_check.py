"""benchmarks/rl_step_check.py --smoke: the GPU check's GRPO and PPO step timing, run on the CPU with tiny
models (the same code paths as on a GPU), records both methods with their step times."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_times_grpo_and_ppo_steps(tmp_path):
    out = tmp_path / "rl_step_check.json"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    env.pop("OUT", None)
    proc = subprocess.run([sys.executable, "benchmarks/rl_step_check.py", "--smoke", "--json", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["complete"] and data["smoke"] and data["dtype"] == "float32"
    results = {r["method"]: r for r in data["results"]}
    assert set(results) == {"grpo", "ppo"}
    for name, r in results.items():
        assert r["ok"] and r["error"] is None, r
        assert r["steps"] >= 2 and len(r["step_s"]) == r["steps"] - 1
        assert r["warmup_s"] > 0 and all(t > 0 for t in r["step_s"])
        assert r["median_s"] > 0 and r["completions_per_s"] > 0
        assert r["peak_mem_gib"] is None  # CPU
        assert f"{name}: {r['steps']} steps" in proc.stdout
    assert "PASS" in proc.stdout

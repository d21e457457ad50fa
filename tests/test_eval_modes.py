"""`rosmind eval` direct (in-process, vectorized) and --ros (the node graph in lockstep) agree
on the same 20 unseen seeds: each mode's success rate lies inside the other's 95% interval, and
lockstep episodes match direct ones seed for seed in outcome."""

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.sim, pytest.mark.ros]


def test_direct_and_ros_modes_agree(tmp_path, ros_env):
    res = {}
    for mode in ("direct", "ros"):
        out = tmp_path / f"{mode}.json"
        cmd = [sys.executable, "-m", "rosmind.cli", "eval", "--policy", "expert", "--episodes", "20",
               "--seed-start", "200000", "--json", str(out)] + (["--ros"] if mode == "ros" else [])
        p = subprocess.run(cmd, env=ros_env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        res[mode] = json.loads(out.read_text())
    d, r = res["direct"], res["ros"]
    assert d["episodes"] == r["episodes"] == 20 and d["seeds"] == r["seeds"]
    assert d["ci95"][0] <= r["success_rate"] <= d["ci95"][1]
    assert r["ci95"][0] <= d["success_rate"] <= r["ci95"][1]
    same = sum(a == b for a, b in zip(d["success"], r["success"], strict=True))
    assert same >= 18, f"outcomes differ on {20 - same} seeds: {d['success']} vs {r['success']}"
    assert r["latency_ms"]["p50"] > 0

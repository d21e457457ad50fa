"""``rosmind bench recorder`` runs end to end (3 s) and reports sane numbers; the speed
targets (0 lost, <= 1 core at 60 s) live in benchmarks/README.md, not here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.ros


def test_recorder_bench_reports_every_topic(ros_env, ros_domain, tmp_path):
    out = tmp_path / "recorder.json"
    proc = subprocess.run([sys.executable, "-m", "rosmind.cli", "bench", "recorder", "--seconds", "3",
                           "--domain", str(ros_domain), "--json", str(out)],
                          env=ros_env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["benchmark"] == "recorder"
    assert set(r["topics"]) == {"/joint_states", "/wrench", "/camera/cam0/image_raw", "/camera/cam1/image_raw"}
    for name, t in r["topics"].items():
        assert t["published"] > 0 and 0 <= t["recorded"] <= t["published"], (name, t)
        assert t["lost"] == t["published"] - t["recorded"]
    assert r["topics"]["/joint_states"]["published"] > 10 * r["topics"]["/camera/cam0/image_raw"]["published"]
    assert r["recorder_cpu_cores"] > 0 and r["mb_per_s"] > 0
    assert r["lost_total"] == sum(t["lost"] for t in r["topics"].values())

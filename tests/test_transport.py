"""`rosmind bench transport` end to end with tiny sample counts: the JSON has the documented
schema and every latency is positive and finite (the speed targets live in benchmarks/)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from rosmind.launch import module_exists


def _check_summary(s: dict, n: int, where: str) -> None:
    assert set(s) >= {"p50", "p99", "mean", "max", "n"}, where
    assert s["n"] == n, where
    for k in ("p50", "p99", "mean", "max"):
        assert math.isfinite(s[k]) and s[k] > 0, f"{where}.{k} = {s[k]}"
    assert s["p50"] <= s["p99"] <= s["max"] + 1e-9, where


@pytest.mark.ros
def test_transport_bench_writes_positive_finite_results(tmp_path, ros_domain):
    out = tmp_path / "transport.json"
    cmd = [sys.executable, "-m", "rosmind.cli", "bench", "transport", "--json", str(out),
           "--domain", str(ros_domain), "--float-samples", "20", "--float-rate", "200",
           "--image-samples", "8", "--image-rate", "50", "--policy-samples", "8",
           "--policy-modes", "lockstep", "--warmup", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "image RTT, Fast DDS default / rosmind profile" in proc.stdout
    r = json.loads(out.read_text())
    assert r["benchmark"] == "transport" and r["domain_id"] == ros_domain
    assert r["fastdds_profile"].endswith("rosmind/config/fastdds.xml")
    expected = {"float": 20, "image": 8, "image_default_profile": 8}
    assert set(r["cases"]) == set(expected)
    for name, n in expected.items():
        c = r["cases"][name]
        assert c["samples"] + c["lost"] == n and c["samples"] >= 1, c
        _check_summary(c["rtt_ms"], c["samples"], f"{name}.rtt_ms")
        _check_summary(c["one_way_ms"], c["samples"], f"{name}.one_way_ms")
        assert c["one_way_ms"]["p50"] == pytest.approx(c["rtt_ms"]["p50"] / 2)
    assert (r["cases"]["image"]["profile"], r["cases"]["image_default_profile"]["profile"]) == \
        ("rosmind", "fastdds-default")
    for k, v in r["ratios"].items():
        assert math.isfinite(v) and v > 0, k
    p = r["policy"]
    if not module_exists("rosmind_ros.policy_node"):
        assert p["status"] == "skipped" and "policy_node unavailable" in p["reason"]
        return
    assert p["status"] == "ok", p
    assert p["params"] == {"policy": "instant", "robot": "panda", "mode": "lockstep"}
    assert p["samples"] + p["lost"] == 8 and p["samples"] >= 1
    _check_summary(p["latency_ms"], p["samples"], "policy.latency_ms")
    assert p["overhead_ratio_p50"] == pytest.approx(
        p["latency_ms"]["p50"] / r["cases"]["float"]["one_way_ms"]["p50"])
    assert set(r["targets"]["met"]) == {"policy_overhead_ratio_p50", "policy_p99_ms"}


@pytest.mark.unit
def test_bench_dispatch_rejects_unknown_names_and_bad_options(capsys):
    from rosmind.cli import main
    from rosmind.commands.bench import BENCHMARKS

    assert main(["bench", "nope"]) == 2
    known = ", ".join(sorted(BENCHMARKS))
    assert f"unknown benchmark 'nope'; known benchmarks: {known}" in capsys.readouterr().err
    assert "transport" in BENCHMARKS
    assert main(["bench", "transport", "--image-samples", "0"]) == 2
    assert "--image-samples must be >= 1" in capsys.readouterr().err


_MAPS = """
import rclpy
rclpy.init()
node = rclpy.create_node("profile_probe")
node.create_publisher(__import__("std_msgs.msg").msg.String, "probe", 10)
for line in open("/proc/self/maps"):
    if "/dev/shm/fastrtps_" in line and "_port" not in line:
        lo, hi = line.split()[0].split("-")
        print("SEGMENT", int(hi, 16) - int(lo, 16))
node.destroy_node()
rclpy.shutdown()
"""


@pytest.mark.ros
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_fastdds_profile_loads_and_maps_a_16mb_segment(ros_env):
    """Fast DDS falls back to its defaults with only a log line when the XML is bad; prove
    that the shipped profile parses and its 16 MB shared-memory segment is really mapped."""
    proc = subprocess.run([sys.executable, "-c", _MAPS], env=ros_env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "XMLPARSER" not in proc.stderr and "Error" not in proc.stderr, proc.stderr
    sizes = [int(ln.split()[1]) for ln in proc.stdout.splitlines() if ln.startswith("SEGMENT")]
    assert any(s >= 16 * 2**20 for s in sizes), sizes
    default = {k: v for k, v in ros_env.items() if k != "FASTRTPS_DEFAULT_PROFILES_FILE"}
    proc = subprocess.run([sys.executable, "-c", _MAPS], env=default, capture_output=True,
                          text=True, timeout=60)
    sizes = [int(ln.split()[1]) for ln in proc.stdout.splitlines() if ln.startswith("SEGMENT")]
    assert sizes and max(sizes) < 16 * 2**20, sizes  # the probe can tell the difference

"""The sim pick_place graph (robot_node, safety_node, policy_node as processes over DDS), in
lockstep and in real time: ticks per second, real-time tick jitter, command round trip.

    .venv/bin/python benchmarks/sim_graph.py [--policy expert] [--episodes 3] \
        [--out benchmarks/results/sim_graph.json]

Each mode runs ``launch/sim_pick_place.launch.yaml`` through ``rosmind launch`` in a free
ROS_DOMAIN_ID (claimed with the test fixtures' lock files) and reads robot_node's results file:

- lockstep ``ticks_per_s``: control ticks per wall second over the episodes (the graph's
  throughput; the sim waits for every command, so this is what evaluation costs);
- ``round_trip_ms``: wall time from robot_node publishing a tick to receiving the first
  trajectory stamped with it (sensor -> policy -> safety -> robot), p50/p99;
- realtime ``tick_jitter_ms``: how late each tick started against its wall-clock schedule,
  and ``late_ticks`` (ticks that overran their period).

Speed targets (on an idle 2-core machine): lockstep >= 40 ticks/s with the scripted expert
(2x the Panda's 20 Hz), realtime jitter p99 <= 5 ms, round trip p50 <= 10 ms. The load average
is recorded beside the numbers: on a shared machine p99 values measure the scheduler.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import _claim_domain  # noqa: E402  (the test fixtures' domain locks)

from rosmind.ros_env import ros_environ  # noqa: E402

TARGETS = {"lockstep_ticks_per_s_min": 40.0, "realtime_jitter_p99_ms_max": 5.0,
           "round_trip_p50_ms_max": 10.0}


def run_mode(mode: str, policy: str, episodes: int, seed: int, env: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="rosmind-bench-") as tmp:
        results = Path(tmp) / "results.json"
        cmd = [sys.executable, "-m", "rosmind.cli", "launch", str(REPO / "launch" / "sim_pick_place.launch.yaml"),
               f"episodes:={episodes}", f"seed:={seed}", f"policy:={policy}", f"mode:={mode}",
               "cameras:=false", f"results:={results}"]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not results.exists():
            return {"status": "failed", "rc": proc.returncode, "output": proc.stdout[-2000:] + proc.stderr[-2000:]}
        res = json.loads(results.read_text())
    return {"status": "ok", "wall_s": time.monotonic() - t0, **{k: res[k] for k in (
        "n_episodes", "success_rate", "ticks", "ticks_per_s", "missed_commands", "late_ticks",
        "safety_holds", "latency")}, "episodes": res["episodes"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", default="expert")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "sim_graph.json")
    args = p.parse_args(argv)
    domain, lock = _claim_domain()
    try:
        env = ros_environ(domain)
        modes = {m: run_mode(m, args.policy, args.episodes, args.seed, env) for m in ("lockstep", "realtime")}
    finally:
        lock.close()
    lk, rt = modes["lockstep"], modes["realtime"]
    met = {}
    if lk["status"] == "ok":
        met["lockstep_ticks_per_s"] = lk["ticks_per_s"] >= TARGETS["lockstep_ticks_per_s_min"]
        if "round_trip_ms" in lk["latency"]:
            met["round_trip_p50_ms"] = lk["latency"]["round_trip_ms"]["p50"] <= TARGETS["round_trip_p50_ms_max"]
    if rt["status"] == "ok" and "tick_jitter_ms" in rt["latency"]:
        met["realtime_jitter_p99_ms"] = rt["latency"]["tick_jitter_ms"]["p99"] <= TARGETS["realtime_jitter_p99_ms_max"]
    out = {"benchmark": "sim_graph", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "host": {"python": platform.python_version(), "machine": platform.machine(),
                    "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]},
           "policy": args.policy, "episodes": args.episodes, "seed": args.seed, "modes": modes,
           "targets": {**TARGETS, "met": met}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for m, r in modes.items():
        if r["status"] != "ok":
            print(f"{m}: FAILED (rc {r['rc']})\n{r['output']}")
            continue
        lat = r["latency"]
        jit = lat.get("tick_jitter_ms", {})
        rtt = lat.get("round_trip_ms", {})
        print(f"{m}: success {r['success_rate']:.2f}, {r['ticks_per_s']:.1f} ticks/s, "
              f"round trip p50 {rtt.get('p50', float('nan')):.1f} ms p99 {rtt.get('p99', float('nan')):.1f} ms"
              + (f", jitter p50 {jit['p50']:.2f} ms p99 {jit['p99']:.2f} ms, late {r['late_ticks']}" if jit else ""))
    print(f"wrote {args.out} (load average {out['host']['load_avg_1m']:.1f})")
    return 0 if all(r["status"] == "ok" for r in modes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

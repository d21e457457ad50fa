"""Fault trials on the real sim graph (robot_node realtime + expert policy_node + safety_node,
fault_proxy in the path, nodes SIGKILLed): the quick set of ``rosmind bench faults``, one
episode each. Nothing unsafe may reach the robot, every corrupted chunk gets safety's answer
(matched by its stamp), a policy that stops (killed, or its inputs stale) ends in safety's hold right
after its last plan runs out, a killed safety_node leaves the robot standing still, and the graph
recovers when the fault ends."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.ros

WATCHDOG_PERIODS = 3  # SafetyConfig.watchdog_hold_periods


def test_quick_fault_trials(ros_env, tmp_path):
    out = tmp_path / "faults.json"
    r = subprocess.run([sys.executable, "-m", "rosmind_ros.bench_faults", "run", "--domain", ros_env["ROS_DOMAIN_ID"],
                        "--trials", "quick", "--episodes", "1", "--timeout", "90", "--log-dir", str(tmp_path / "logs"),
                        "--json", str(out)], env=ros_env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    trials = json.loads(out.read_text())["trials"]
    assert set(trials) == {"nan", "out_of_limits", "drop_20", "object_poses_frozen", "policy_killed_restarted",
                           "safety_killed"}
    for name, t in trials.items():
        assert t["graph_finished"] and t["episodes"] == 1, (name, t)
        assert t["unsafe"] == 0, (name, t["unsafe_kinds"])
        assert t["commands_to_robot"] > 20, (name, t)
    for name in ("nan", "out_of_limits"):
        t = trials[name]
        # every corrupted chunk got its own answer, matched by stamp: safety's empty hold for a
        # refused one (every NaN; an out-of-limit column that also jumps), the clamped chunk
        # otherwise. How fast is a wall-clock figure on a shared machine: it is reported in
        # benchmarks/results/faults.json, not asserted here.
        a = t["safe_answer_ms"]
        assert t["injected"] >= 5 and a["n"] == t["injected"], (name, t)
        assert t["recovered"] is not None, (name, t)
    # Refused NaN chunks leave the robot where it was: the next clean chunk goes through. An
    # out-of-limit chunk that safety *clamps* (accepts) can carry a joint to its limit; once the
    # watchdog has stopped the robot there, only a command near the measured position (or
    # safety/reset) re-arms, and a policy wanting the joint back 1.4 rad away stays refused (seen
    # in a fresh-clone CI run). So recovery is asserted for NaN only; benchmarks/results/faults.json
    # reports it for both.
    assert trials["nan"]["recovered"], trials["nan"]
    # A NaN chunk is refused: its answer is a hold (one may be paired with a clean re-sent chunk
    # of the same tick whose answer arrived just after the fault began).
    assert trials["nan"]["safe_answer_ms"]["hold"] >= trials["nan"]["injected"] - 1
    assert trials["drop_20"]["injected"] > 0
    for name in ("object_poses_frozen", "policy_killed_restarted"):
        t = trials[name]
        assert t["hold_after_plan_end_periods"] is not None, (name, t)
        # the watchdog counts sim time; its timer may fire a tick or two late on a loaded machine
        assert t["hold_after_plan_end_periods"] <= WATCHDOG_PERIODS + 2, (name, t)
        assert t["recovered"], (name, t)
    assert "/fault/object_poses" in trials["object_poses_frozen"]["stale_topics_named"]
    t = trials["safety_killed"]
    assert t["commands_after_kill"] == 0, t
    assert t["stopped_after_plan_end_periods"] is not None and t["stopped_after_plan_end_periods"] <= 20, t

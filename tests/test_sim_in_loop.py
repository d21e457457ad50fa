"""Sim in the loop: robot_node (PyBullet, lockstep), safety_node and policy_node (scripted
expert) as separate processes over real DDS, started by the sim_pick_place launch file."""

from __future__ import annotations

import json
import sys

import pytest
from procs import run_to_end

from rosmind.registry import POLICIES
from rosmind.sim.robots import make_sim
from rosmind.sim.rollout import run_episode

pytestmark = pytest.mark.ros

SEED = 1000



def test_expert_graph_places_the_cube_like_the_direct_rollout(ros_env, repo, tmp_path):
    results = tmp_path / "results.json"
    rc, out = run_to_end([sys.executable, "-m", "rosmind.cli", "launch",
                    str(repo / "launch" / "sim_pick_place.launch.yaml"), "episodes:=1", f"seed:={SEED}",
                    "policy:=expert", "mode:=lockstep", "cameras:=false", f"results:={results}"],
                   ros_env, timeout=90)
    assert rc == 0, out[-4000:]
    assert f"episode 0 seed {SEED} success True" in out, out[-4000:]
    ep = json.loads(results.read_text())["episodes"][0]
    assert ep["success"] is True
    assert ep["missed_commands"] == 0, "lockstep: every tick must get its command through safety"

    sim = make_sim("panda", "pick_place")
    entry = POLICIES.get("expert")
    with sim:
        direct = run_episode(sim, entry.factory(entry.config()), seed=SEED)
        time_limit = sim.task_status()["time_limit"]
    assert ep["sim_time"] <= time_limit
    # Lockstep makes the ROS graph deterministic: when safety passed every command, the
    # episode is the in-process evaluation's, tick for tick.
    if ep["safety_holds"] == 0:
        assert (ep["success"], ep["ticks"]) == (direct.success, direct.ticks)


def test_policy_node_without_its_topics_exits_naming_them(ros_env):
    rc, out = run_to_end([sys.executable, "-m", "rosmind_ros.policy_node", "--ros-args",
                    "-p", "policy:=expert", "-p", "startup_timeout_s:=1.5"], ros_env, timeout=30)
    assert rc == 2, out
    assert "no message on topic(s)" in out and "/joint_states" in out and "/ee_pose" in out, out
    assert "Traceback" not in out, out

"""Evaluation under perturbations: noise selectors, seeded noise, task options, the eval CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rosmind.errors import SpecError, UnknownNameError
from rosmind.sim.perturb import (
    NoisyObservations,
    ObservationNoise,
    parse_task_options,
    perturbed_sim_factory,
)
from rosmind.sim.robots import make_sim
from rosmind.spec import load_spec

pytestmark = pytest.mark.sim

SPEC = load_spec("panda")


def test_selectors_per_role_and_joint_in_each_joints_units():
    n = ObservationNoise.parse(["joint_pos=0.1", "joint_pos.arm=0.005", "joint_pos.gripper=0.001",
                                "joint_pos.panda_joint3=0.02", "object_poses=0.003"], SPEC)
    np.testing.assert_allclose(n.std["joint_pos"], [0.005, 0.005, 0.02, 0.005, 0.005, 0.005, 0.005, 0.001])
    assert float(n.std["object_poses"]) == 0.003
    assert ObservationNoise.parse("joint_pos.gripper=0.002", SPEC).std["joint_pos"].tolist() == [0.0] * 7 + [0.002]


@pytest.mark.parametrize("item, msg", [
    ("joint_pos.hand=0.1", "neither a joint role"), ("joint_pos.leg=0.1", "no 'leg' joints"),
    ("joint_pos=abc", "must be a number"), ("joint_pos=-1", ">= 0"), ("joint_pos=nan", "finite"),
    ("ee_pose.x=0.1", "only joint keys"), ("joint_pos", "expected key=value"),
])
def test_bad_selectors_are_refused_by_name(item, msg):
    with pytest.raises(SpecError, match=msg):
        ObservationNoise.parse([item], SPEC)


def test_noise_is_seeded_by_the_episode_and_leaves_the_true_state_alone():
    noise = ObservationNoise.parse(["joint_pos.arm=0.01", "object_poses=0.002"], SPEC)
    with make_sim("panda", "pick_place") as clean:
        truth = clean.reset(5)
    runs = []
    for _ in range(2):
        sim = NoisyObservations(make_sim("panda", "pick_place"), noise)
        with sim:
            runs.append([sim.reset(5), sim.read()])
            other = sim.reset(6)
    a, b = runs
    np.testing.assert_array_equal(a[0]["joint_pos"], b[0]["joint_pos"])  # same seed, same noise
    np.testing.assert_array_equal(a[1]["object_poses"], b[1]["object_poses"])
    d = a[0]["joint_pos"] - truth["joint_pos"]
    assert 0 < np.abs(d[:7]).max() < 0.05 and d[7] == 0.0
    assert not np.array_equal(a[0]["joint_pos"], a[1]["joint_pos"])  # fresh noise every read
    dp = a[0]["object_poses"] - truth["object_poses"]
    assert np.abs(dp[:, :3]).max() > 0 and np.all(dp[:, 3:] == 0)  # positions only
    assert not np.array_equal(other["joint_pos"][:7] - truth["joint_pos"][:7], d[:7])


def test_noise_on_a_key_the_robot_lacks_is_refused_at_the_first_read():
    sim = NoisyObservations(make_sim("panda", "pick_place"), ObservationNoise.parse("imu_orientation=0.1", SPEC))
    with sim, pytest.raises(SpecError, match=r"imu_orientation.*does not give"):
        sim.reset(0)


def test_task_options_are_typed_and_reach_the_task():
    opts = parse_task_options(["cube_mass=0.3", "cube_x=[0.5, 0.55]", "hold_ticks=2"], "pick_place")
    assert opts == {"cube_mass": 0.3, "cube_x": (0.5, 0.55), "hold_ticks": 2}
    sim = perturbed_sim_factory("panda", "pick_place", opts)()
    with sim:
        assert sim.task.config.cube_mass == 0.3 and sim.task.config.cube_x == (0.5, 0.55)
    with pytest.raises(SpecError, match=r"unknown option\(s\) \['cube_mas'\]"):
        parse_task_options("cube_mas=1", "pick_place")
    with pytest.raises(SpecError, match="hold_ticks"):
        parse_task_options("hold_ticks=abc", "pick_place")
    with pytest.raises(UnknownNameError):
        parse_task_options("a=1", "no_such_task")


def test_eval_cli_reports_perturbations_final_errors_and_warmup(tmp_path):
    out = tmp_path / "e.json"
    cmd = [sys.executable, "-m", "rosmind.cli", "eval", "--policy", "expert", "--episodes", "2",
           "--task-option", "cube_mass=0.2", "--obs-noise", "joint_pos.gripper=0.0005", "--json", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["task_options"] == ["cube_mass=0.2"] and res["obs_noise"] == ["joint_pos.gripper=0.0005"]
    assert len(res["final_error_m"]) == 2
    for ok, err in zip(res["success"], res["final_error_m"], strict=True):
        assert (err <= 0.03) if ok else (err >= 0)  # xy_tolerance
    assert res["latency_ms"]["warmup_excluded"] == 2
    bad = subprocess.run(cmd[:-2] + ["--obs-noise", "joint_pos.wrist=1"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "joint_pos.wrist" in bad.stderr and not out.with_name("x").exists()

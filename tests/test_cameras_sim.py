"""Cameras in process: the schedule, determinism, image randomization, image datasets, and a
tiny image collect -> train -> eval run."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rosmind.errors import SpecError
from rosmind.sim.cameras import CameraObservations, cameras_of, with_cameras
from rosmind.sim.robots import make_sim

pytestmark = pytest.mark.sim


def test_cameras_of_keys_and_unknown_camera():
    assert cameras_of(["joint_pos", "camera/scene/rgb", "camera/wrist/rgb", "camera/scene/depth"]) == ("scene", "wrist")
    sim = make_sim("panda")
    assert with_cameras(sim, ()) is sim
    with pytest.raises(SpecError, match="nose"):
        CameraObservations(sim, ["nose"])


def test_frames_follow_the_camera_rate_and_are_held_between():
    with CameraObservations(make_sim("panda", "pick_place"), ["scene"], depth=True) as sim:
        every = 2  # 20 Hz control, 10 Hz cameras (panda.yaml)
        frames = [sim.reset(3)]
        for _ in range(6):
            sim.write(frames[-1]["joint_pos"] + np.r_[[0.05] * 7, 0.0])  # the arm moves in view
            sim.step()
            frames.append(sim.read())
        rgb = [f["camera/scene/rgb"] for f in frames]
        assert rgb[0].shape == (96, 128, 3) and frames[0]["camera/scene/depth"].shape == (96, 128)
        for k in range(1, len(rgb)):
            same = np.array_equal(rgb[k], rgb[k - 1])
            assert same == (k % every != 0), f"tick {k}: a new frame only on camera ticks"
        # A new episode starts with its own first frame, not the last one's.
        first = sim.reset(3)["camera/scene/rgb"]
        np.testing.assert_array_equal(first, rgb[0])


def test_renders_are_deterministic_under_a_seed_with_and_without_randomization():
    dr = dict(light_jitter_deg=30.0, light_color_jitter=0.2, color_jitter=0.1, camera_jitter_m=0.005,
              camera_jitter_deg=2.0, distractors=2)
    shots = {}
    for name, opts in (("plain", {}), ("dr", dr)):
        for run in range(2):
            with make_sim("panda", "pick_place", **opts) as sim:
                shots[name, run] = [(sim.reset(s)["object_poses"], sim.render("scene")[0], sim.render("wrist")[0])
                                    for s in (5, 6)]
    for name in ("plain", "dr"):
        for a, b in zip(shots[name, 0], shots[name, 1], strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)
    for (pose_p, scene_p, _), (pose_d, scene_d, _) in zip(shots["plain", 0], shots["dr", 0], strict=True):
        np.testing.assert_array_equal(pose_p, pose_d)  # randomization leaves the layout alone
        assert np.abs(scene_p.astype(int) - scene_d.astype(int)).mean() > 2
    assert not np.array_equal(shots["dr", 0][0][1], shots["dr", 0][1][1])  # seeds differ


def test_fixed_perturbations_and_bad_values():
    with make_sim("panda", "pick_place") as sim:
        sim.reset(1)
        base = sim.render("scene")[0].astype(int)
        pose = sim.camera_pose("scene")
    for opts in (dict(light_direction=(1.0, 1.0, 0.5)), dict(camera_offset=(0.01, 0, 0, 0, 2.0, 0)),
                 dict(distractors=1)):
        with make_sim("panda", "pick_place", **opts) as sim:
            sim.reset(1)
            assert np.abs(sim.render("scene")[0].astype(int) - base).mean() > 0.05, opts
            if "camera_offset" in opts:  # the camera's reported pose moved by 1 cm along its x axis
                moved = sim.camera_pose("scene")
                np.testing.assert_allclose(moved[:3, 3] - pose[:3, 3], 0.01 * pose[:3, 0], atol=1e-9)
                cos = (np.trace(pose[:3, :3].T @ moved[:3, :3]) - 1) / 2
                assert np.degrees(np.arccos(np.clip(cos, -1, 1))) == pytest.approx(2.0, abs=1e-6)
    for bad, match in ((dict(distractors=-1), "distractors"), (dict(camera_offset=(0, 0)), "camera_offset"),
                       (dict(color_jitter=float("nan")), "color_jitter")):
        with pytest.raises(SpecError, match=match):
            make_sim("panda", "pick_place", **bad)


def _cli(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "rosmind.cli", *args], capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"rosmind {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def test_image_collect_train_eval_end_to_end(tmp_path):
    from rosmind.dataset import ReplayBuffer

    data, run = tmp_path / "rgb.zarr", tmp_path / "run"
    _cli("collect", "--task", "pick_place", "--episodes", "2", "--out", str(data), "--cameras", "wrist,scene",
         "--depth")
    buf = ReplayBuffer.open(data, "r")
    scene, depth = buf.array("camera/scene/rgb"), buf.array("camera/scene/depth")
    assert scene.shape[1:] == (96, 128, 3) and scene.dtype == np.uint8 and scene.chunks[0] == 1
    assert depth.dtype == np.uint16 and depth.shape[1:] == (96, 128)
    assert 300 < int(np.median(depth[0])) < 1500  # millimetres to the table
    _cli("train", "--policy", "diffusion", "--dataset", str(data), "--out", str(run), "--preset", "tiny",
         "policy.obs_keys=[\"joint_pos\",\"camera/wrist/rgb\",\"camera/scene/rgb\"]", "policy.n_obs_steps=1",
         "policy.relative_actions=true", "train.steps=4")
    manifest = json.loads((run / "checkpoint" / "manifest.json").read_text())
    shapes = manifest["config"]["obs_shapes"]
    assert shapes["camera/scene/rgb"] == [96, 128, 3] and shapes["camera/wrist/rgb"] == [96, 96, 3]
    out = tmp_path / "eval.json"
    _cli("eval", "--checkpoint", str(run / "checkpoint"), "--episodes", "1", "--seed-start", "100000",
         "--json", str(out))
    res = json.loads(out.read_text())
    assert res["episodes"] == 1 and res["episode_lengths"][0] > 10

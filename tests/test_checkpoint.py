"""Checkpoints: exact round trip (weights, normalizer, inference), manifest, refusals."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from rosmind.checkpoint import (
    MANIFEST,
    WEIGHTS,
    load_checkpoint,
    observation_topic,
    save_checkpoint,
)
from rosmind.errors import CheckpointError
from rosmind.policies.diffusion import DiffusionConfig, DiffusionPolicy
from rosmind.spec import load_spec

pytestmark = pytest.mark.unit

SMALL = dict(down_dims=(16, 32), step_embed_dim=16, n_groups=4, horizon=8, n_action_steps=4,
             num_inference_steps=3, seed=5)


def _obs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"joint_pos": rng.normal(size=(2, 8)), "ee_pose": rng.normal(size=(2, 7)),
            "object_poses": rng.normal(size=(2, 1, 7)), "goal_pose": rng.normal(size=(2, 7))}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(1)
    p = DiffusionPolicy(DiffusionConfig(**SMALL))
    rng = np.random.default_rng(0)
    p.fit_normalizer({k: {"min": rng.uniform(-2, -1, s), "max": rng.uniform(1, 2, s)}
                      for k, s in [("joint_pos", (8,)), ("ee_pose", (7,)), ("object_poses", (1, 7)),
                                   ("goal_pose", (7,)), ("action", (8,))]})
    training = {"command": "rosmind train --policy diffusion", "dataset": {"path": "d.zarr", "hash": "abc"}}
    path = save_checkpoint(p, tmp_path / "ckpt", training=training)
    return p, path


def test_round_trip_is_exact_including_inference(saved):
    p, path = saved
    q = load_checkpoint(path, robot_spec=load_spec("panda"))
    assert isinstance(q, DiffusionPolicy) and q.config == p.config and not q.training
    a, b = p.state_dict(), q.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    p.freeze_for_inference()  # load_checkpoint freezes q: sample both the same way
    p.reseed()
    q.reseed()
    for seed in range(2):
        np.testing.assert_array_equal(p.infer(_obs(seed))["action"], q.infer(_obs(seed))["action"])


def test_manifest_describes_topics_action_space_robot_and_training(saved):
    p, path = saved
    m = json.loads((path / MANIFEST).read_text())
    assert m["format_version"] == 1 and m["family"] == "diffusion"
    assert m["observations"]["joint_pos"] == {"topic": "joint_states", "msg_type": "sensor_msgs/msg/JointState",
                                              "shape": [8]}
    assert m["observations"]["object_poses"]["msg_type"] == "geometry_msgs/msg/PoseArray"
    assert m["observations"]["goal_pose"]["topic"] == "goal_pose"
    spec = load_spec("panda")
    assert m["action"]["joint_names"] == spec.joint_names and m["action"]["kind"] == "absolute_position"
    assert m["action"]["units"] == ["rad"] * 7 + ["m"]
    assert m["robot"]["fingerprint"] == spec.fingerprint() and m["control_rate_hz"] == 20
    assert (m["n_obs_steps"], m["horizon"], m["n_action_steps"]) == (2, 8, 4)
    assert m["normalization"]["action"]["min"] == p.normalizer.stats()["action"]["min"]
    assert m["training"]["dataset"] == {"path": "d.zarr", "hash": "abc"}
    assert m["training"]["command"].startswith("rosmind train") and "git_commit" in m["training"]
    assert m["config"]["down_dims"] == [16, 32] and m["config"]["obs_shapes"]["object_poses"] == [1, 7]
    assert set(m["tensors"]) == set(load_file(str(path / WEIGHTS)))
    assert observation_topic("camera/wrist/rgb") == ("camera/wrist/image_raw", "sensor_msgs/msg/Image")


def test_refuses_another_robot_or_joint_order(saved):
    _, path = saved
    with pytest.raises(CheckpointError, match=r"ckpt/manifest.json: robot.fingerprint.name: .*'panda', not 'a1'"):
        load_checkpoint(path, robot_spec=load_spec("a1"))
    panda = load_spec("panda")
    swapped = dataclasses.replace(panda, joints=(panda.joints[1], panda.joints[0], *panda.joints[2:]))
    with pytest.raises(CheckpointError, match="robot.fingerprint.joint_names"):
        load_checkpoint(path, robot_spec=swapped)


def _edit_manifest(path, fn):
    m = json.loads((path / MANIFEST).read_text())
    fn(m)
    (path / MANIFEST).write_text(json.dumps(m))


def test_refuses_missing_or_corrupt_files(saved, tmp_path):
    _, path = saved
    with pytest.raises(CheckpointError, match="nowhere: checkpoint folder does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    (path / WEIGHTS).rename(tmp_path / "w")
    with pytest.raises(CheckpointError, match=f"missing {WEIGHTS}"):
        load_checkpoint(path)
    (tmp_path / "w").write_bytes(b"\x00" * 20)
    (tmp_path / "w").rename(path / WEIGHTS)
    with pytest.raises(CheckpointError, match="unreadable safetensors"):
        load_checkpoint(path)
    (path / MANIFEST).write_text('{"family": "diffusion", ')
    with pytest.raises(CheckpointError, match="manifest.json: corrupt JSON"):
        load_checkpoint(path)
    (path / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match="ckpt: missing manifest.json"):
        load_checkpoint(path)


@pytest.mark.parametrize("edit,match", [
    (lambda m: m.update(family="transformer"), r"field family: unknown policy 'transformer'"),
    (lambda m: m.pop("config"), r"missing field 'config'"),
    (lambda m: m.update(format_version=99), r"format_version 99"),
    (lambda m: m["config"].update(warp=3), r"config: unknown field\(s\) \['warp'\]"),
    (lambda m: m["config"].update(horizon="long"), r"config.horizon: expected an integer"),
    (lambda m: m["config"].update(down_dims=[16, 64]), r"tensor '.*' has shape"),
])
def test_refuses_bad_manifest_fields(saved, edit, match):
    _, path = saved
    _edit_manifest(path, edit)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_refuses_missing_and_extra_tensor_keys(saved):
    _, path = saved
    tensors = load_file(str(path / WEIGHTS))
    dropped = sorted(tensors)[0]
    save_file({k: v for k, v in tensors.items() if k != dropped}, str(path / WEIGHTS))
    with pytest.raises(CheckpointError, match=f"missing tensor key.*{dropped}"):
        load_checkpoint(path)
    save_file({**tensors, "stray.weight": torch.zeros(2)}, str(path / WEIGHTS))
    with pytest.raises(CheckpointError, match="unexpected tensor key.*stray.weight"):
        load_checkpoint(path)

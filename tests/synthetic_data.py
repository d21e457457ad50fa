"""Synthetic pick_place-shaped zarr datasets for the dataset/train/policy tests.

Each episode is a smooth function of time whose phase and goal depend on the episode seed;
``action[t]`` is ``joint_pos[t + 1]`` (the next absolute target), so it is learnable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rosmind.dataset import ReplayBuffer


def episode(seed: int, length: int = 40, image_hw: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=8)
    goal = np.concatenate([rng.uniform(-0.3, 0.3, 3), [0, 0, 0, 1]])
    t = np.linspace(0, 1, length + 1)[:, None]
    q = 0.5 * np.sin(2 * np.pi * t + phase) + 0.2 * goal[0]
    q[:, 7] = 0.02 + 0.02 * np.sign(np.sin(2 * np.pi * t[:, 0] + phase[7]))  # gripper, metres
    ee = np.concatenate([np.cos(q[:, :3]), np.zeros((length + 1, 3)), np.ones((length + 1, 1))], axis=1)
    obj = np.tile(np.concatenate([goal[:3] * 0.5, [0, 0, 0, 1]]), (length + 1, 1, 1))
    data = {
        "joint_pos": q[:-1], "ee_pose": ee[:-1], "object_poses": obj[:-1],
        "goal_pose": np.tile(goal, (length, 1)), "action": q[1:],
    }
    data = {k: v.astype(np.float32) for k, v in data.items()}
    if image_hw is not None:
        h, w = image_hw
        img = np.zeros((length, h, w, 3), dtype=np.uint8)
        for i in range(length):
            img[i, :, :, 0] = np.uint8(127 + 120 * np.sin(q[i, 0]))
            img[i, i % h, :, 1] = 255
        data["camera/wrist/rgb"] = img
    return data


def make_dataset(path: str | Path, n_episodes: int = 6, length: int = 40,
                 image_hw: tuple[int, int] | None = None) -> Path:
    buf = ReplayBuffer.open(path, "w")
    for seed in range(n_episodes):
        buf.add_episode(episode(seed, length, image_hw), {"seed": seed, "success": True})
    return Path(path)

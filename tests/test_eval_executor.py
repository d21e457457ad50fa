"""`rosmind eval --n-action-steps / --temporal-ensemble`: the executor settings reach the
episodes (inference is called as often as they say), and the ROS mode refuses them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rosmind.checkpoint import load_checkpoint
from rosmind.policies.executors import ChunkExecutorConfig
from rosmind.sim.evaluate import evaluate
from rosmind.sim.robots import make_sim
from rosmind.spec import load_spec

pytestmark = pytest.mark.sim

CKPT = "checkpoints/diffusion_pick_place"


def _calls(repo, executor: ChunkExecutorConfig | None, n_envs: int) -> tuple[int, list[int]]:
    policy = load_checkpoint(repo / CKPT, load_spec("panda"))
    res = evaluate(lambda: make_sim("panda", "pick_place", time_limit_s=2.0), policy, [7, 8], n_envs=n_envs,
                   executor=executor)
    return len(res.latencies_s) + res.warmup_calls, res.lengths


@pytest.mark.parametrize("n_envs", [1, 2])
def test_executor_settings_reach_the_episodes(repo, n_envs, one_thread):
    default, lengths = _calls(repo, None, n_envs)
    every_2, lengths2 = _calls(repo, ChunkExecutorConfig(n_action_steps=2), n_envs)
    ensemble, _ = _calls(repo, ChunkExecutorConfig(temporal_ensemble=0.1, replan_every=1), n_envs)
    ticks = sum(lengths) if n_envs == 1 else max(lengths)  # calls: per episode, or per batched tick
    assert lengths == lengths2 == [40, 40]
    assert default == pytest.approx(ticks / 8, abs=2)  # the checkpoint executes 8 rows per chunk
    assert every_2 == pytest.approx(ticks / 2, abs=2)
    assert ensemble == pytest.approx(ticks, abs=2)  # a plan every tick


def test_ros_mode_refuses_executor_settings(repo):
    r = subprocess.run([sys.executable, "-m", "rosmind.cli", "eval", "--checkpoint", str(repo / CKPT), "--ros",
                        "--n-action-steps", "4"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--n-action-steps" in r.stderr and "direct mode only" in r.stderr

"""`rosmind eval --n-action-steps / --temporal-ensemble`: the executor settings reach the
episodes (inference is called as often as they say), more rows than a policy returns widen its
chunks (up to its horizon) instead of silently running fewer, and the ROS mode refuses them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rosmind.checkpoint import load_checkpoint
from rosmind.commands.eval import widen_chunks
from rosmind.errors import SpecError, UserError
from rosmind.policies.executors import ChunkExecutor, ChunkExecutorConfig
from rosmind.sim.evaluate import evaluate
from rosmind.sim.robots import make_sim
from rosmind.spec import load_spec

pytestmark = pytest.mark.sim

CKPT = "checkpoints/diffusion_pick_place"


def _calls(repo, executor: ChunkExecutorConfig | None, n_envs: int, widen: int | None = None) -> tuple[int, list[int]]:
    policy = load_checkpoint(repo / CKPT, load_spec("panda"))
    widen_chunks(policy, widen, CKPT)
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


def test_more_rows_than_the_policy_returns(repo, one_thread):
    policy = load_checkpoint(repo / CKPT, load_spec("panda"))  # 8 rows a chunk, horizon 16
    with pytest.raises(SpecError, match="returns 8 rows"):
        ChunkExecutor(policy, ChunkExecutorConfig(n_action_steps=12))
    with pytest.raises(UserError, match="plans 16 rows"):
        widen_chunks(policy, 17, CKPT)
    calls, lengths = _calls(repo, ChunkExecutorConfig(n_action_steps=12), 1, widen=12)
    assert lengths == [40, 40] and calls == pytest.approx(sum(lengths) / 12, abs=2)


def test_ros_mode_refuses_executor_settings(repo):
    r = subprocess.run([sys.executable, "-m", "rosmind.cli", "eval", "--checkpoint", str(repo / CKPT), "--ros",
                        "--n-action-steps", "4"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--n-action-steps" in r.stderr and "direct mode only" in r.stderr


def test_samples_override_reaches_the_policy_and_bad_uses_are_refused(repo, capsys):
    import argparse

    from rosmind.cli import main
    from rosmind.commands.eval import add_arguments, load_policy

    p = argparse.ArgumentParser()
    add_arguments(p)
    policy = load_policy(p.parse_args(["--checkpoint", str(repo / CKPT), "--samples", "4"]), load_spec("panda"))
    assert policy.config.n_samples == 4
    assert main(["eval", "--checkpoint", str(repo / CKPT), "--episodes", "1", "--samples", "0"]) != 0
    assert "--samples" in capsys.readouterr().err
    assert main(["eval", "--policy", "expert", "--episodes", "1", "--samples", "2"]) != 0
    assert "not a diffusion policy" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(repo / CKPT), "--episodes", "1", "--ros", "--samples", "2"]) != 0
    assert "direct mode only" in capsys.readouterr().err

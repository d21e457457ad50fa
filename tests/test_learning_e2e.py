"""The learning loop end to end through the CLI, tiny: collect 4 expert episodes -> train 50
steps -> eval 2 episodes (direct), and the result JSON has the promised fields."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.sim


def _rosmind(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "rosmind.cli", *map(str, args)], capture_output=True,
                         text=True, timeout=timeout, env=env)
    assert out.returncode == 0, f"rosmind {' '.join(map(str, args))} failed:\n{out.stderr[-3000:]}"
    return out


def test_collect_train_eval(tmp_path):
    data, run, res = tmp_path / "d.zarr", tmp_path / "run", tmp_path / "eval.json"
    _rosmind("collect", "--task", "pick_place", "--episodes", 4, "--out", data, "--workers", 2)
    _rosmind("train", "--policy", "diffusion", "--dataset", data, "--out", run, "--preset", "tiny",
             "train.steps=50", "policy.relative_actions=true")
    ckpt = run / "checkpoint"
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["family"] == "diffusion" and manifest["robot"]["fingerprint"]["name"] == "panda"
    _rosmind("eval", "--checkpoint", ckpt, "--task", "pick_place", "--episodes", 2, "--n-envs", 2,
             "--json", res)
    out = json.loads(res.read_text())
    assert out["episodes"] == 2 and len(out["episode_lengths"]) == 2
    lo, hi = out["ci95"]
    assert 0.0 <= lo <= out["success_rate"] <= hi <= 1.0
    assert out["latency_ms"]["p50"] > 0 and out["latency_ms"]["p99"] >= out["latency_ms"]["p50"]


def test_bad_inputs_exit_nonzero_with_a_clear_line(tmp_path):
    bad = tmp_path / "nothing.zarr"
    cases = [
        (["train", "--policy", "diffusion", "--dataset", bad, "--out", tmp_path / "r"], str(bad)),
        (["train", "--policy", "difusion", "--dataset", bad, "--out", tmp_path / "r"], "difusion"),
        (["eval", "--checkpoint", tmp_path, "--episodes", 1], "manifest"),
        (["collect", "--task", "pick_plaice", "--episodes", 1, "--out", bad], "pick_plaice"),
    ]
    for args, needle in cases:
        out = subprocess.run([sys.executable, "-m", "rosmind.cli", *map(str, args)], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode != 0, args
        assert needle in out.stderr and "Traceback" not in out.stderr, out.stderr

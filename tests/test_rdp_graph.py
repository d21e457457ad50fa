"""The wipe graph (launch/sim_wipe.launch.yaml) hosting the shipped RDP checkpoint."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def test_wipe_graph_with_the_shipped_rdp_matches_the_direct_rollout(ros_env, repo, tmp_path):
    """launch/sim_wipe.launch.yaml (robot_node + policy_node hosting checkpoints/rdp_wipe + safety)
    in lockstep with seeded noise: the episode is the in-process one, tick for tick."""
    import json

    from procs import run_to_end

    from rosmind.checkpoint import load_checkpoint
    from rosmind.sim.robots import make_sim
    from rosmind.sim.rollout import run_episode

    seed, results = 100001, tmp_path / "results.json"
    rc, out = run_to_end([sys.executable, "-m", "rosmind.cli", "launch", str(repo / "launch" / "sim_wipe.launch.yaml"),
                          "episodes:=1", f"seed:={seed}", "mode:=lockstep", "noise:=episode",
                          f"results:={results}"], ros_env, timeout=240)
    assert rc == 0, out[-4000:]
    ep = json.loads(results.read_text())["episodes"][0]
    assert ep["missed_commands"] == 0 and ep["safety_holds"] == 0, ep
    with make_sim("panda", "wipe") as sim:
        direct = run_episode(sim, load_checkpoint(repo / "checkpoints" / "rdp_wipe"), seed, noise="episode")
    assert (ep["success"], ep["ticks"]) == (direct.success, direct.ticks)
    # The wipe's force RMSE (NaN if it never touched down) agrees to 0.01 % here, not bit for bit:
    # left as an open item (the DP graph tests compare success and ticks only).
    np.testing.assert_allclose(ep["final_error"], direct.final_error, rtol=1e-3, equal_nan=True)


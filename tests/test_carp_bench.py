"""``rosmind bench policies``: JSON schema, the CARP-vs-DP target arithmetic, clear errors."""

import json

import pytest

from rosmind.bench.policies import targets
from rosmind.cli import main

pytestmark = pytest.mark.sim


def test_targets_hand_computed():
    res = {"diffusion_ddpm100": {"ci95": [0.5, 0.8], "latency_ms": {"p50": 1000.0}},
           "diffusion_ddim10": {"ci95": [0.55, 0.85], "latency_ms": {"p50": 100.0}},
           "carp": {"success_rate": 0.52, "latency_ms": {"p50": 40.0}}}
    t = targets(res)
    assert t["chunk_speedup_vs_diffusion_ddpm100"] == pytest.approx(25.0)
    assert t["chunk_speedup_vs_diffusion_ddim10"] == pytest.approx(2.5)
    assert t["meets_10x_vs_ddpm100"] and t["meets_2x_vs_ddim10"]
    assert t["carp_success_in_diffusion_ddpm100_ci95"] and not t["carp_success_in_diffusion_ddim10_ci95"]
    assert targets({"diffusion_ddim10": res["diffusion_ddim10"]}) == {}


@pytest.fixture(scope="module")
def carp_ckpt(tmp_path_factory):
    from rosmind.checkpoint import save_checkpoint
    from rosmind.policies.carp import CarpConfig, CarpPolicy

    cfg = CarpConfig(d_model=32, n_layers=1, n_heads=2, codebook_size=32)
    return save_checkpoint(CarpPolicy(cfg), tmp_path_factory.mktemp("ck") / "carp")


def test_bench_runs_carp_and_writes_the_schema(carp_ckpt, tmp_path):
    out = tmp_path / "r.json"
    rc = main(["bench", "policies", "--policies", "carp", "--episodes", "1", "--n-envs", "1",
               "--latency-iters", "2", "--carp-checkpoint", str(carp_ckpt), "--json", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())["carp"]
    assert set(r) >= {"success_rate", "ci95", "params", "latency_ms", "latency_per_action_ms"}
    assert r["episodes"] == 1 and r["seeds"] == [100_000] and r["params"] > 0
    assert r["latency_per_action_ms"]["p50"] == pytest.approx(r["latency_ms"]["p50"] / 8)


def test_bench_refuses_a_checkpoint_of_another_family(carp_ckpt, capsys):
    rc = main(["bench", "policies", "--policies", "diffusion", "--diffusion-checkpoint", str(carp_ckpt)])
    assert rc == 2
    assert "holds a 'carp' checkpoint, not 'diffusion'" in capsys.readouterr().err
    assert main(["bench", "policies", "--policies", "carp,dp"]) == 2
    assert "unknown family ['dp']" in capsys.readouterr().err


def test_eval_overrides_carp_sampling_and_refuses_it_elsewhere(carp_ckpt, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["eval", "--checkpoint", str(carp_ckpt), "--episodes", "1", "--n-envs", "1",
                 "--sampling", "greedy", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["episodes"] == 1
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(carp_ckpt), "--episodes", "1", "--top-k", "0"]) != 0
    assert "CarpConfig.top_k" in capsys.readouterr().err
    assert main(["eval", "--policy", "expert", "--episodes", "1", "--sampling", "greedy"]) != 0
    assert "not a CARP policy" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(carp_ckpt), "--episodes", "1", "--ros", "--top-k", "2"]) != 0
    assert "direct mode only" in capsys.readouterr().err


def test_latency_is_timed_round_robin_with_the_order_rotated(carp_ckpt):
    from rosmind.bench.policies import round_robin_latency
    from rosmind.checkpoint import load_checkpoint

    calls: list[str] = []
    pols = {}
    for name in ("a", "b", "c"):
        p = load_checkpoint(carp_ckpt)
        infer = p.infer
        p.infer = lambda obs, name=name, infer=infer: (calls.append(name), infer(obs))[1]
        pols[name] = p
    times = round_robin_latency(pols, iters=3, warmup=1)
    assert {n: len(t) for n, t in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t > 0 for ts in times.values() for t in ts)
    assert calls == ["a", "b", "c"] + ["a", "b", "c", "b", "c", "a", "c", "a", "b"]

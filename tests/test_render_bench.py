"""``rosmind bench render``: every renderer variant measured in one run, the schema, bad input."""

import json

import pytest

from rosmind.cli import main

pytestmark = pytest.mark.sim


def test_render_bench_measures_each_variant(tmp_path):
    out = tmp_path / "render.json"
    assert main(["bench", "render", "--resolutions", "48x32", "--frames", "3", "--workers", "1",
                 "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r["ms_per_frame"]) == {"tiny/detailed", "tiny/low_poly", "egl/detailed", "egl/low_poly"}
    ours = r["ms_per_frame"]["tiny/low_poly"]["48x32"]
    for cam in ("wrist", "gripper", "scene"):
        assert 0 < ours[cam]["ms_p50"] < 1000 and ours[cam]["mean_intensity"] > 10  # a real picture
    assert r["speedup_vs_reference"]["48x32"]["scene"] > 0
    assert r["parallel_frames_per_s"]["by_processes"]["1"] > 0


def test_render_bench_refuses_bad_resolutions(capsys):
    assert main(["bench", "render", "--resolutions", "big"]) == 2
    assert "WxH" in capsys.readouterr().err

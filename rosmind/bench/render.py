"""Camera rendering cost in the PyBullet sim: ms per frame per camera, resolution and renderer.

    rosmind bench render --json benchmarks/results/render.json

Variants, each in a fresh process (PyBullet's EGL plugin takes over every render of the client
that loads it): TinyRenderer and EGL (Mesa llvmpipe here), each with pybullet_data's detailed
Panda visual meshes (the reference path: ~14 ms per 128x128 frame) and with rosmind's
low-poly visuals (the collision meshes, ``sim.panda_urdf.low_poly_panda_urdf``). Per variant, both
Panda cameras at each ``--resolutions`` entry, on a seeded pick_place scene with the arm over
the cube. Then the path rosmind uses, in 1 and ``--workers`` processes at once (the collection
and eval workers), as frames per second in total.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

from rosmind.bench import write_result

VARIANTS = (("tiny", "detailed"), ("tiny", "low_poly"), ("egl", "detailed"), ("egl", "low_poly"))
ROSMIND_PATH = ("tiny", "low_poly")
REFERENCE_PATH = ("tiny", "detailed")
CAMERAS = ("wrist", "gripper", "scene")


def add_arguments(p):
    p.add_argument("--resolutions", default="64x48,96x96,128x96,128x128,224x224",
                   help="comma-separated WxH list")
    p.add_argument("--frames", type=int, default=40, help="timed frames per camera and resolution")
    p.add_argument("--workers", type=int, default=2, help="processes rendering at once, for the parallel figure")
    p.add_argument("--json", type=Path, default=None)


def _scene(renderer: str, visuals: str):
    from rosmind.sim.robots import PandaSim, make_sim

    sim = make_sim("panda", "pick_place")
    sim.world.renderer = renderer
    if visuals == "detailed":
        sim.LOW_POLY_VISUALS = False  # an instance attribute: this sim only
    elif visuals != "low_poly":
        raise ValueError(f"visuals must be detailed or low_poly, got {visuals!r}")
    assert isinstance(sim, PandaSim)
    sim.connect()
    sim.reset(0)
    for _ in range(20):  # the arm moves in view of the scene camera, over the cube
        sim.step()
    return sim


def _time_frames(sim, camera: str, width: int, height: int, frames: int) -> dict:
    import numpy as np

    from rosmind.sim.world import CameraModel

    sim.cameras[camera] = CameraModel(width, height)
    for _ in range(3):
        sim.render(camera)
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        rgb, _ = sim.render(camera)
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1e3
    return {"ms_p50": round(float(np.median(ms)), 3), "ms_mean": round(float(ms.mean()), 3),
            "mean_intensity": round(float(rgb.mean()), 2)}


def _variant(args) -> dict:
    renderer, visuals, resolutions, frames = args
    sim = _scene(renderer, visuals)
    out = {}
    for w, h in resolutions:
        out[f"{w}x{h}"] = {c: _time_frames(sim, c, w, h, frames) for c in CAMERAS}
    sim.disconnect()
    return out


def _throughput(args) -> int:
    renderer, visuals, seconds = args
    sim = _scene(renderer, visuals)
    n, t_end = 0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        sim.render(CAMERAS[n % 2])
        n += 1
    sim.disconnect()
    return n


def _in_fresh_processes(fn, jobs: list) -> list:
    ctx = mp.get_context("spawn")
    with ctx.Pool(len(jobs)) as pool:
        return pool.map(fn, jobs)


def run(args) -> int:
    from rosmind.errors import UserError

    try:
        res = [tuple(int(v) for v in r.lower().split("x")) for r in args.resolutions.split(",") if r]
    except ValueError:
        raise UserError(f"--resolutions {args.resolutions!r}: expected WxH,WxH,...") from None
    if not res or any(len(r) != 2 or min(r) < 8 for r in res):
        raise UserError(f"--resolutions {args.resolutions!r}: each entry WxH with W, H >= 8")
    if args.workers < 1 or args.frames < 1:
        raise UserError("--workers and --frames must be >= 1")
    variants = {}
    for renderer, visuals in VARIANTS:
        try:
            variants[f"{renderer}/{visuals}"] = _in_fresh_processes(_variant, [(renderer, visuals, res, args.frames)])[0]
        except Exception as e:  # e.g. no EGL library: reported, the other variants still run
            variants[f"{renderer}/{visuals}"] = {"error": f"{type(e).__name__}: {e}"}
    seconds = 3.0
    fps = {}
    for n in sorted({1, args.workers}):
        counts = _in_fresh_processes(_throughput, [(*ROSMIND_PATH, seconds)] * n)
        fps[str(n)] = round(sum(counts) / seconds, 1)
    ours, ref = variants["/".join(ROSMIND_PATH)], variants["/".join(REFERENCE_PATH)]
    speedup = {}
    for r in ours:
        if "error" in ref or "error" in ours:
            break
        speedup[r] = {c: round(ref[r][c]["ms_p50"] / ours[r][c]["ms_p50"], 2) for c in CAMERAS}
    out = {"cpu_count": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
           "frames_per_point": args.frames, "cameras": list(CAMERAS),
           "ms_per_frame": variants, "rosmind_path": "/".join(ROSMIND_PATH),
           "reference_path": "/".join(REFERENCE_PATH),
           "speedup_vs_reference": speedup,
           "parallel_frames_per_s": {"path": "/".join(ROSMIND_PATH), "by_processes": fps},
           "target": "rosmind path >= 2x faster per frame than the reference at the same resolution"}
    for name, v in variants.items():
        if "error" in v:
            print(f"{name:>16}: {v['error']}")
            continue
        cells = "  ".join(f"{r} " + "/".join(f"{v[r][c]['ms_p50']:.2f}" for c in CAMERAS) for r in v)
        print(f"{name:>16} ms ({'/'.join(CAMERAS)}): {cells}")
    print(f"speed-up of {out['rosmind_path']} over {out['reference_path']}: {speedup}")
    print(f"frames/s of {out['rosmind_path']} by processes: {fps}")
    if args.json:
        write_result(args.json, out)
    return 0

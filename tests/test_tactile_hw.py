"""Camera-based tactile sensing (DIGIT / GelSight-style marker gels): marker offsets and a
normal-force proxy from synthetic gel images, in the sim taxel pad's [rows, cols, 3] layout."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rosmind.errors import HardwareError
from rosmind.hardware.sensors.tactile import MarkerTracker

pytestmark = pytest.mark.unit
ROWS, COLS, PITCH = 5, 7, 12


def gel(shift=(0.0, 0.0), pressed=None, darken=40, missing=()) -> np.ndarray:
    """A lit gel (grey 180) with ROWS x COLS dark markers; markers inside the ``pressed`` circle
    (x, y, radius) move by ``shift`` and the gel there gets ``darken`` darker."""
    img = np.full((ROWS * PITCH + 12, COLS * PITCH + 12), 180, np.uint8)
    if pressed is not None:
        cv2.circle(img, (int(pressed[0]), int(pressed[1])), int(pressed[2]), 180 - darken, -1)
    for r in range(ROWS):
        for c in range(COLS):
            if (r, c) in missing:
                continue
            x, y = 12 + c * PITCH, 12 + r * PITCH
            inside = pressed is not None and np.hypot(x - pressed[0], y - pressed[1]) < pressed[2]
            dx, dy = shift if inside else (0.0, 0.0)
            cv2.circle(img, (int(round((x + dx) * 16)), int(round((y + dy) * 16))), 2 * 16, 30, -1,
                       lineType=cv2.LINE_AA, shift=4)
    return np.stack([img] * 3, -1)  # an RGB camera frame


def test_marker_offsets_and_normal_proxy_where_the_gel_is_pressed():
    t = MarkerTracker(ROWS, COLS)
    t.reference(gel())
    assert t.ref.shape == (ROWS, COLS, 2)
    np.testing.assert_allclose(t(gel()), 0.0, atol=0.3)  # untouched: nothing
    press = (12 + 3 * PITCH, 12 + 2 * PITCH, 20)  # around marker (2, 3)
    out = t(gel(shift=(3.0, -2.0), pressed=press))
    assert out.shape == (ROWS, COLS, 3) and t.lost == 0
    np.testing.assert_allclose(out[2, 3, 1:], [3.0, -2.0], atol=0.5)  # shear at the press
    np.testing.assert_allclose(out[0, 0, 1:], [0.0, 0.0], atol=0.3)  # none far from it
    assert out[2, 3, 0] > 20 and abs(out[0, 0, 0]) < 2  # the gel darkens where pressed


def test_lost_markers_and_a_bad_reference():
    t = MarkerTracker(ROWS, COLS)
    with pytest.raises(HardwareError, match="no reference frame"):
        t(gel())
    with pytest.raises(HardwareError, match="shows 34 markers, expected 5 x 7 = 35"):
        t.reference(gel(missing=[(0, 0)]))
    t.reference(gel())
    out = t(gel(missing=[(4, 6)]))
    assert t.lost == 1 and np.all(out[4, 6, 1:] == 0)


@pytest.mark.ros
def test_camera_node_in_tactile_mode_publishes_marker_offsets(ros_env, tmp_path):
    import subprocess
    import sys

    from procs import Probe, stop_process
    from sensor_msgs.msg import Image

    from rosmind.ros_args import ros_literal
    from rosmind_ros import conversions as cv

    path = str(tmp_path / "gel.avi")
    first = gel()
    h, w = first.shape[:2]
    out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30, (w, h))
    press = (12 + 3 * PITCH, 12 + 2 * PITCH, 20)
    for k in range(150):  # 1 s untouched (the first frame is the reference), then pressed
        out.write(cv2.cvtColor(first if k < 30 else gel(shift=(3.0, -2.0), pressed=press), cv2.COLOR_RGB2BGR))
    out.release()
    proc = subprocess.Popen([sys.executable, "-m", "rosmind_ros.camera_node", "--ros-args", "-p", "name:=pad", "-p",
                             "driver:=uvc", "-p", f"options:={ros_literal(f'{{device: {path}}}')}", "-p",
                             f"tactile_grid:=[{ROWS}, {COLS}]"], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    probe = Probe("tactile_probe")
    got = probe.collect(Image, "tactile/pad")
    try:
        probe.wait(lambda: got and cv.image_to_numpy(got[-1])[2, 3, 1] > 2, 60, "the press in the offsets")
        assert got and got[-1].encoding == "32FC3" and (got[-1].height, got[-1].width) == (ROWS, COLS)
        a = cv.image_to_numpy(got[-1])
        np.testing.assert_allclose(a[2, 3, 1:], [3.0, -2.0], atol=0.7)  # MJPG: a little blur
    finally:
        probe.close()
        stop_process(proc)
        proc.communicate()

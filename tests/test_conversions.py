import numpy as np
import pytest

from rosmind_ros import conversions as cv

pytestmark = pytest.mark.unit


def test_stamp_round_trip():
    for t in (0.0, 1.5, 12345.000000001, 0.05 * 7):
        assert abs(cv.to_sec(cv.stamp(t)) - t) < 1e-9


def test_joint_state_reorders_by_name():
    msg = cv.joint_state(["b", "a"], [2.0, 1.0], [20.0, 10.0], t=3.0)
    out = cv.joint_state_to_numpy(msg, ["a", "b"])
    np.testing.assert_array_equal(out["joint_pos"], [1.0, 2.0])
    np.testing.assert_array_equal(out["joint_vel"], [10.0, 20.0])
    np.testing.assert_array_equal(out["joint_effort"], [0.0, 0.0])
    with pytest.raises(KeyError, match="'c'"):
        cv.joint_state_to_numpy(msg, ["a", "c"])


@pytest.mark.parametrize("enc,shape,dtype", [("rgb8", (48, 64, 3), np.uint8), ("32FC1", (48, 64), np.float32),
                                             ("mono8", (5, 7), np.uint8), ("16UC1", (4, 3), np.uint16)])
def test_image_round_trip(enc, shape, dtype):
    rng = np.random.default_rng(0)
    a = (rng.random(shape) * 200).astype(dtype)
    msg = cv.image(a, enc, 1.0, "cam")
    assert msg.step == shape[1] * (shape[2] if len(shape) == 3 else 1) * np.dtype(dtype).itemsize
    np.testing.assert_array_equal(cv.image_to_numpy(msg), a)


def test_image_with_row_padding():
    a = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = cv.image(a, "rgb8", 0.0, "")
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :9] = a.reshape(2, 9)
    msg.step, msg.data = 12, padded.tobytes()
    np.testing.assert_array_equal(cv.image_to_numpy(msg), a)


RGB = np.random.default_rng(1).integers(0, 255, (6, 5, 3), dtype=np.uint8)


@pytest.mark.parametrize("enc,raw", [("rgb8", RGB), ("bgr8", RGB[..., ::-1]),
                                     ("rgba8", np.concatenate([RGB, np.full((6, 5, 1), 9, np.uint8)], -1)),
                                     ("bgra8", np.concatenate([RGB[..., ::-1], np.full((6, 5, 1), 9, np.uint8)], -1))])
def test_colour_encodings_give_rgb(enc, raw):
    out = cv.image_to_rgb(cv.image(raw, enc, 0.0, "cam"))
    assert out.shape == (6, 5, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, RGB)


def test_mono_is_repeated_and_depth_is_not_colour():
    g = RGB[..., 0]
    np.testing.assert_array_equal(cv.image_to_rgb(cv.image(g, "mono8", 0.0, "")), np.repeat(g[..., None], 3, 2))
    with pytest.raises(ValueError, match="not a colour image"):
        cv.image_to_rgb(cv.image(np.zeros((2, 2), np.float32), "32FC1", 0.0, ""))
    with pytest.raises(ValueError, match="not a depth image"):
        cv.depth_to_metres(cv.image(g, "mono8", 0.0, ""))


def test_depth_encodings_in_metres():
    mm = np.array([[0, 1000], [1234, 65535]], np.uint16)
    m = cv.depth_to_metres(cv.image(mm, "16UC1", 0.0, ""))
    assert m.dtype == np.float32 and np.isnan(m[0, 0])
    np.testing.assert_allclose(m[0, 1:], [1.0]) and np.testing.assert_allclose(m[1], [1.234, 65.535], rtol=1e-6)
    f = np.array([[0.5, 1.25]], np.float32)
    np.testing.assert_array_equal(cv.depth_to_metres(cv.image(f, "32FC1", 0.0, "")), f)
    big = cv.image(f, "32FC1", 0.0, "")
    big.is_bigendian, big.data = 1, f.astype(">f4").tobytes()
    np.testing.assert_array_equal(cv.depth_to_metres(big), f)


def test_truncated_image_data_is_refused():
    msg = cv.image(RGB, "rgb8", 0.0, "")
    msg.data = msg.data[:-3]
    with pytest.raises(ValueError, match="cannot hold"):
        cv.image_to_numpy(msg)


def test_trajectory_round_trip_and_reorder():
    pts = np.arange(12, dtype=float).reshape(4, 3)
    msg = cv.joint_trajectory(["a", "b", "c"], pts, t=2.0, dt=0.05)
    pos, times = cv.joint_trajectory_to_numpy(msg, ["c", "a", "b"])
    np.testing.assert_array_equal(pos, pts[:, [2, 0, 1]])
    np.testing.assert_allclose(times, [0, 0.05, 0.1, 0.15])


def test_poses_wrench_imu_odom():
    p = np.array([0.1, 0.2, 0.3, 0, 0, 0.7071068, 0.7071068])
    np.testing.assert_allclose(cv.pose_to_numpy(cv.pose_stamped(p, 0, "w").pose), p)
    arr = np.stack([p, p + 1])
    np.testing.assert_allclose(cv.pose_array_to_numpy(cv.pose_array(arr, 0, "w")), arr)
    w = np.arange(6.0)
    np.testing.assert_allclose(cv.wrench_to_numpy(cv.wrench_stamped(w, 0, "h")), w)
    m = cv.imu_to_numpy(cv.imu([0, 0, 0, 1], [1, 2, 3], [4, 5, 6], 0, "imu"))
    np.testing.assert_allclose(m["imu_linear_acceleration"], [4, 5, 6])
    o = cv.odometry_to_numpy(cv.odometry(p, w, 0, "odom", "trunk"))
    np.testing.assert_allclose(o["odom_twist"], w)


@pytest.mark.parametrize("coloured", [False, True])
def test_point_cloud_round_trip(coloured):
    rng = np.random.default_rng(2)
    pts = rng.normal(size=(50, 3)).astype(np.float32)
    cols = rng.integers(0, 255, (50, 3), dtype=np.uint8) if coloured else None
    msg = cv.point_cloud(pts, cols, 2.5, "panda_link0")
    assert (msg.width, msg.height, msg.header.frame_id) == (50, 1, "panda_link0")
    assert [f.name for f in msg.fields] == ["x", "y", "z"] + (["rgb"] if coloured else [])
    back, back_cols = cv.point_cloud_to_numpy(msg)
    np.testing.assert_array_equal(back, pts)
    if coloured:
        np.testing.assert_array_equal(back_cols, cols)
    else:
        assert back_cols is None

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

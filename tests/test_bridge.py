"""robot_node's ROS-free core: setpoint choice from commands, lockstep gate, results file."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from rosmind.bridge import CommandMailbox, EpisodeLog, EpisodeResult, episode_line

pytestmark = pytest.mark.unit

DT = 0.05


def _traj(n: int, base: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """n points, one per period; point i is all (base + i)."""
    return np.arange(n) * DT, np.repeat((base + np.arange(n))[:, None], 2, axis=1)


def test_realtime_point_is_the_latest_whose_time_has_come_then_holds_the_last():
    mb = CommandMailbox(dof=2)
    assert mb.setpoint_at(1.0) is None
    times, pos = _traj(4)
    mb.put_trajectory(1.0, times, pos)
    assert mb.setpoint_at(0.99) is None                 # before the first point
    assert mb.setpoint_at(1.0)[0] == 0
    assert mb.setpoint_at(1.0 + 1.5 * DT)[0] == 1       # between points: the earlier one
    assert mb.setpoint_at(1.0 + 2 * DT)[0] == 2         # exactly on a point (float stamps)
    assert mb.setpoint_at(5.0)[0] == 3                  # past the end: hold the last


def test_newest_command_kind_wins_and_clear_forgets():
    mb = CommandMailbox(dof=2)
    mb.put_trajectory(0.0, *_traj(3))
    mb.put_position(np.array([7.0, 7.0]))
    assert mb.setpoint_at(0.1)[0] == 7
    mb.put_trajectory(0.0, *_traj(3, base=10))
    assert mb.setpoint_at(0.1)[0] == 12
    mb.clear()
    assert mb.setpoint_at(0.1) is None


def test_lockstep_takes_only_the_trajectory_stamped_for_the_open_tick():
    mb = CommandMailbox(dof=2)
    mb.open_tick(2.0)
    mb.put_trajectory(1.95, *_traj(3))                  # the previous tick's plan: not it
    assert mb.wait(0.01) == ("timeout", None)
    mb.put_trajectory(2.0, *_traj(3, base=5))
    kind, q = mb.wait(0.01)
    assert kind == "command"
    np.testing.assert_array_equal(q, [5, 5])            # points[0]
    assert mb.wait(0.01) == ("timeout", None)           # consumed; the gate is closed


def test_lockstep_position_command_after_open_counts_and_wait_wakes_up():
    mb = CommandMailbox(dof=2)
    mb.put_position(np.array([1.0, 1.0]))               # before the tick opened: ignored
    mb.open_tick(0.5)
    assert mb.wait(0.01)[0] == "timeout"
    threading.Timer(0.05, mb.put_position, args=(np.array([3.0, 4.0]),)).start()
    kind, q = mb.wait(5.0)
    assert kind == "command"
    np.testing.assert_array_equal(q, [3, 4])


def test_empty_trajectory_answers_hold_and_cancels_the_plan():
    mb = CommandMailbox(dof=2)
    mb.put_trajectory(0.0, *_traj(4))
    mb.open_tick(0.1)
    mb.put_trajectory(0.1, np.zeros(0), np.zeros((0, 2)))
    assert mb.wait(0.01) == ("hold", None)
    assert mb.setpoint_at(0.1) is None                  # real time: keep the current setpoint


def test_command_seen_upstream_but_refused_by_safety_ends_the_wait_after_grace():
    mb = CommandMailbox(dof=2)
    mb.open_tick(1.0)
    mb.note_upstream(0.95)                              # another tick's: no effect
    assert mb.wait(0.05, grace=0.0)[0] == "timeout"
    mb.note_upstream(1.0)
    assert mb.wait(5.0, grace=0.05) == ("rejected", None)
    mb.open_tick(1.05)
    mb.note_upstream(1.05)
    threading.Timer(0.01, mb.put_trajectory, args=(1.05, *_traj(2))).start()
    assert mb.wait(5.0, grace=2.0)[0] == "command"      # safety passed it within the grace


def test_results_file_and_episode_line(tmp_path):
    log = EpisodeLog("panda", "pick_place", "lockstep", 1000)
    log.add(EpisodeResult(0, 1000, True, 100, 5.0, 2.0))
    log.add(EpisodeResult(1, 1001, False, 200, 10.0, 2.0, missed_commands=3))
    out = tmp_path / "sub" / "results.json"
    log.write(out)
    res = json.loads(out.read_text())
    assert res["success_rate"] == 0.5
    assert res["ticks_per_s"] == 75.0
    assert res["missed_commands"] == 3
    assert [e["seed"] for e in res["episodes"]] == [1000, 1001]
    assert episode_line(log.episodes[0]) == "episode 0 seed 1000 success True ticks 100 sim_time 5.00"

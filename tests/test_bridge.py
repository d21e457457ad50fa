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


class FakeSim:
    """A SimRobot stand-in: joint_pos is the last written setpoint; done after ``length`` ticks."""

    def __init__(self, length: int = 5, clock=None, step_cost=None):
        from rosmind.spec import load_spec

        self.spec = load_spec("panda")
        self.length, self.clock, self.step_cost = length, clock, step_cost or (lambda tick: 0.0)
        self.writes: list[np.ndarray] = []
        self.k = 0

    def reset(self, seed=None):
        self.k, self.q = 0, np.zeros(self.spec.dof)
        return self.read()

    def read(self):
        return {"joint_pos": self.q.copy()}

    def write(self, q):
        self.q = np.asarray(q, dtype=float)
        self.writes.append(self.q.copy())
        return self.q

    def step(self):
        if self.clock is not None:
            self.clock.now += self.step_cost(self.k)
        self.k += 1

    def task_status(self):
        return {"success": self.k >= self.length, "done": self.k >= self.length, "time_limit": 1.0}


class FakeClock:
    def __init__(self):
        self.now, self.sleeps = 100.0, []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


def test_simloop_lockstep_applies_each_ticks_answer_and_counts_a_miss():
    from rosmind.bridge import SimLoop

    sim = FakeSim(length=4)
    mb = CommandMailbox(sim.spec.dof)
    resent = []

    def publish(obs, t):
        k = round(t / DT)
        if k != 2:                                      # tick 2 is never answered
            mb.put_trajectory(t, np.array([0.0, DT]), np.full((2, sim.spec.dof), float(k)))
        return lambda: resent.append(k)

    loop = SimLoop(sim, mb, "lockstep", publish, timeout_s=0.05, retry_s=0.01)
    r = loop.episode(0, seed=1)
    assert [w[0] for w in sim.writes] == [0, 1, 3]       # tick 2 held (no write)
    assert (r.ticks, r.missed_commands, r.success, r.ended_by) == (4, 1, True, "done")
    assert resent and set(resent) == {2}                 # only the unanswered tick is re-sent
    r2 = loop.episode(1, seed=2)
    assert loop.tick == 8 and r2.ticks == 4              # sim time keeps running across episodes
    assert [w[0] for w in sim.writes[3:]] == [4, 5, 6, 7]


def test_simloop_realtime_schedule_late_ticks_and_setpoints_by_time():
    from rosmind.bridge import SimLoop

    clock = FakeClock()
    sim = FakeSim(length=6, clock=clock, step_cost=lambda k: 0.08 if k == 2 else 0.01)
    mb = CommandMailbox(sim.spec.dof)
    plan = (np.arange(8) * DT, np.repeat(np.arange(8.0)[:, None], sim.spec.dof, 1))

    def publish(obs, t):
        if t == 0.0:                                    # one plan, sent once at tick 0
            mb.put_trajectory(0.0, *plan)
        return lambda: None

    loop = SimLoop(sim, mb, "realtime", publish, clock=clock, sleep=clock.sleep)
    r = loop.episode(0, seed=0)
    assert r.late_ticks == 1                             # the 80 ms step overran its 50 ms period
    assert [w[0] for w in sim.writes] == [0, 1, 2, 3, 4, 5]  # the point whose time has come
    np.testing.assert_allclose(loop.lateness, 0.0, atol=1e-9)  # fake clock: every start on time
    np.testing.assert_allclose(clock.sleeps, [0.04, 0.04, 0.04, 0.04, 0.04], atol=1e-9)
    assert r.wall_s == pytest.approx(0.01 * 5 + 0.08 + 0.04 * 5)


def test_simloop_reset_request_ends_the_episode():
    from rosmind.bridge import SimLoop

    sim = FakeSim(length=100)
    mb = CommandMailbox(sim.spec.dof)
    loop = SimLoop(sim, mb, "lockstep", lambda obs, t: (mb.put_position(obs["joint_pos"]), lambda: None)[1],
                   after_tick=lambda t, r: loop.reset_requested.set() if r.ticks == 3 else None)
    r = loop.episode(0, seed=0)
    assert (r.ticks, r.ended_by, r.success, r.missed_commands) == (3, "reset", False, 0)


def test_realtime_counts_ticks_the_plan_no_longer_covers():
    from rosmind.bridge import SimLoop

    clock = FakeClock()
    sim = FakeSim(length=6, clock=clock)
    mb = CommandMailbox(sim.spec.dof)
    assert not mb.covers(0.0)

    def publish(obs, t):
        if t == 0.0:  # three points: ticks 0-2; ticks 3-5 hold the last one with no plan
            mb.put_trajectory(0.0, np.arange(3) * DT, np.zeros((3, sim.spec.dof)))
        return lambda: None

    r = SimLoop(sim, mb, "realtime", publish, clock=clock, sleep=clock.sleep).episode(0, seed=0)
    assert r.no_plan_ticks == 3 and mb.covers(0.1) and not mb.covers(0.15)
    mb.put_position(np.zeros(sim.spec.dof))
    assert mb.covers(99.0)


def test_episodes_start_on_an_aligned_tick():
    from rosmind.bridge import SimLoop

    sim = FakeSim(length=3)
    mb = CommandMailbox(sim.spec.dof)
    starts = []

    def publish(obs, t):
        if not starts or starts[-1][1] != id(obs):
            starts.append((round(t / DT), id(obs)))
        mb.put_position(obs["joint_pos"])
        return lambda: None

    loop = SimLoop(sim, mb, "lockstep", publish, align=2)
    loop.episode(0, seed=0)
    first_of_second = loop.tick
    loop.episode(1, seed=1)
    assert first_of_second == 3 and loop.tick == 4 + 3  # episode 1 ran ticks 4, 5, 6


def test_timeline_join_by_topic_and_stamp(tmp_path):
    from rosmind.timeline import Timeline, index, join, load_rows

    a, b = Timeline(), Timeline()
    a.mark("publish", "cam", 100, mono_s=1.0, value_s=0.003)
    a.mark("publish", "cam", 200, mono_s=2.0)
    b.mark("recv", "cam", 100, mono_s=1.25)
    b.mark("recv", "other", 200, mono_s=9.0)  # another topic: not a pair
    a.write(tmp_path / "a.json")
    rows = load_rows(tmp_path / "a.json")
    assert rows[0] == ("publish", "cam", 100, 1.0, 0.003)
    assert join(index(rows, "publish"), index(list(b.rows), "recv")) == [pytest.approx(0.25)]

"""Evaluation under perturbations: task options and observation noise as ``key=value`` text.

    make = perturbed_sim_factory("panda", "pick_place", parse_task_options(["cube_mass=0.3"], "pick_place"),
                                 ObservationNoise.parse(["joint_pos.arm=0.005", "joint_pos.gripper=0.001"], spec))
    sim = make()          # a SimRobot whose read() carries seeded Gaussian noise

Noise selectors (``--obs-noise KEY=STD``), every standard deviation in the units of what it
perturbs:

- ``joint_pos`` / ``joint_vel``: every joint, each in its own unit (rad for revolute arm joints,
  m for the Panda's prismatic finger);
- ``joint_pos.<role>`` (``arm``, ``gripper``, ``leg``: the spec's joint roles) or
  ``joint_pos.<joint name>``: those joints only (a later, narrower selector wins);
- pose keys (``ee_pose``, ``goal_pose``, ``object_poses``, ``odom_pose``): the position part, m;
- any other observation key (e.g. ``wrench``): every element.

The noise is drawn from a generator seeded by the episode seed (``reset(seed)``), so the
same seed gives the same noisy episode in any process and in any batch.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np

from rosmind.errors import SpecError
from rosmind.robot import Observation
from rosmind.spec import RobotSpec

from .wrap import SimWrapper

POSE_KEYS = ("ee_pose", "goal_pose", "object_poses", "odom_pose")
JOINT_KEYS = ("joint_pos", "joint_vel", "joint_effort")
ROLES = ("arm", "gripper", "leg")
_NOISE_SALT = 0x6E6F6973  # keeps the noise stream apart from the task's own rng(seed)


def _top_level_split(text: str) -> list[str]:
    """Split at commas outside brackets: ``"a=1,b=[1,2]"`` -> ``["a=1", "b=[1,2]"]``."""
    out, depth, cur = [], 0, []
    for ch in text:
        depth += ch in "[("
        depth -= ch in "])"
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def split_pairs(items: Sequence[str] | str, what: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` or ``"a=1,b=2"`` -> ``{"a": "1", "b": "2"}``; a bad item is a SpecError."""
    if isinstance(items, str):
        items = [s for s in _top_level_split(items) if s.strip()]
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise SpecError(f"{what} {item!r}: expected key=value")
        if key in out:
            raise SpecError(f"{what} {key!r} given twice")
        out[key] = value
    return out


def parse_task_options(items: Sequence[str] | str, task: str) -> dict[str, typing.Any]:
    """``key=value`` task options, type-checked against the task's config dataclass."""
    import json

    from rosmind.checkpoint import coerce
    from rosmind.registry import TASKS

    cls = TASKS.get(task).config
    raw = split_pairs(items, "--task-option")
    names = {f.name for f in fields(cls)} if cls else set()
    unknown = sorted(set(raw) - names)
    if unknown:
        raise SpecError(f"task {task!r}: unknown option(s) {unknown}; it has {sorted(names)}")
    hints = typing.get_type_hints(cls)
    out = {}
    for k, text in raw.items():
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out[k] = coerce(value, hints[k], f"--task-option {k}")
    return out


@dataclass(frozen=True)
class ObservationNoise:
    """Per observation key, a standard deviation per element (``std[key]`` broadcasts)."""

    std: dict[str, np.ndarray]
    text: tuple[str, ...] = ()  # the selectors as given, for reports

    @classmethod
    def parse(cls, items: Sequence[str] | str, spec: RobotSpec) -> ObservationNoise:
        raw = split_pairs(items, "--obs-noise")
        std: dict[str, np.ndarray] = {}
        names = spec.joint_names
        # Broad selectors first so that a role or joint name refines them.
        order = sorted(raw, key=lambda k: k.count("."))
        for sel in order:
            try:
                s = float(raw[sel])
            except ValueError:
                raise SpecError(f"--obs-noise {sel}={raw[sel]}: the standard deviation must be a number") from None
            if not (np.isfinite(s) and s >= 0):
                raise SpecError(f"--obs-noise {sel}={raw[sel]}: the standard deviation must be finite and >= 0")
            key, dot, part = sel.partition(".")
            if key in JOINT_KEYS:
                vec = std.setdefault(key, np.zeros(spec.dof))
                if not dot:
                    vec[:] = s
                elif part in ROLES:
                    idx = [i for i, j in enumerate(spec.joints) if j.role == part]
                    if not idx:
                        have = sorted({j.role for j in spec.joints})
                        raise SpecError(f"--obs-noise {sel}: robot {spec.name!r} has no {part!r} joints "
                                        f"(its roles: {have})")
                    vec[idx] = s
                elif part in names:
                    vec[names.index(part)] = s
                else:
                    raise SpecError(f"--obs-noise {sel}: {part!r} is neither a joint role {list(ROLES)} nor "
                                    f"a joint of {spec.name!r} {names}")
            elif dot:
                raise SpecError(f"--obs-noise {sel}: only joint keys {list(JOINT_KEYS)} take a .<role> or "
                                f".<joint> selector")
            else:
                std[key] = np.asarray(s)
        return cls(std, tuple(f"{k}={raw[k]}" for k in raw))

    def __bool__(self) -> bool:
        return any(np.any(v > 0) for v in self.std.values())

    def check_keys(self, obs: Observation, where: str) -> None:
        missing = sorted(k for k in self.std if k not in obs)
        if missing:
            raise SpecError(f"{where}: --obs-noise names observation key(s) {missing} the robot does not give; "
                            f"it gives {sorted(k for k in obs if k != 'stamp')}")

    def apply(self, obs: Observation, rng: np.random.Generator) -> Observation:
        """A copy of ``obs`` with noise added; keys are visited in sorted order (reproducible)."""
        out = dict(obs)
        for key in sorted(self.std):
            a = np.asarray(obs[key], dtype=np.float64)
            if key in POSE_KEYS:
                noisy = a.copy()
                noisy[..., :3] += rng.normal(size=a[..., :3].shape) * self.std[key]
            else:
                noisy = a + rng.normal(size=a.shape) * self.std[key]
            out[key] = noisy.astype(np.asarray(obs[key]).dtype, copy=False)
        return out


class NoisyObservations(SimWrapper):
    """Wraps a SimRobot so that ``reset``/``read`` return noisy observations (wrap, don't subclass).

    Everything else (``write``, ``step``, ``task_status``, ``render``, ``spec``...) is the wrapped
    robot's. The true state is untouched: only what the policy (or ROS graph) reads is noisy.
    """

    def __init__(self, sim, noise: ObservationNoise):
        super().__init__(sim)
        self.noise = noise
        self._rng = np.random.default_rng([_NOISE_SALT, 0])
        self._checked = False

    def _noisy(self, obs: Observation) -> Observation:
        if not self._checked:
            self.noise.check_keys(obs, f"robot {self.sim.spec.name!r}")
            self._checked = True
        return self.noise.apply(obs, self._rng)

    def reset(self, seed: int | None = None) -> Observation:
        self._rng = np.random.default_rng([_NOISE_SALT, 0 if seed is None else int(seed)])
        return self._noisy(self.sim.reset(seed))

    def read(self) -> Observation:
        return self._noisy(self.sim.read())


def perturbed_sim_factory(robot: str, task: str | None, task_options: dict | None = None,
                          noise: ObservationNoise | None = None) -> Callable:
    """A ``make_sim()`` for ``evaluate``: the task with ``task_options``, reads with ``noise``."""
    from .robots import make_sim

    def make():
        sim = make_sim(robot, task, **(task_options or {}))
        return NoisyObservations(sim, noise) if noise else sim

    return make

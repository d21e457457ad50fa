"""The one RL entry point: rsl-rl-lib's PPO (``OnPolicyRunner``) over rosmind's vectorized envs.

    rosmind train --policy ppo_locomotion --task a1_velocity --out runs/a1_walk [--resume] \\
        [rl.iterations=300] [env.num_envs=2048] [env.terrain=rough]

Run folder::

    runs/NAME/run.json                    both configs, the command
    runs/NAME/tb/                         tensorboard scalars (rsl-rl's logger)
    runs/NAME/progress.jsonl              one line per checkpoint block: iteration, env steps, wall
                                          time (and the env's finished episodes and successes)
    runs/NAME/checkpoints/iter_000050/    train_state.safetensors + .json (actor, critic, optimizer)
    runs/NAME/checkpoints/latest -> iter_000050
    runs/NAME/checkpoint/                 the exported policy (safetensors + manifest)

rsl-rl saves with ``torch.save`` (pickle); rosmind never does: ``SafetensorsRunner`` writes the
same state as safetensors + JSON and reads it back for ``--resume``. The exported checkpoint is
an ordinary rosmind checkpoint of the ``ppo_locomotion`` family, the observation normalizer
inside, so policy_node hosts it like any other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rosmind.errors import SpecError, UserError

PROGRESS = "progress.jsonl"


@dataclass
class RLConfig:
    """PPO settings (rsl-rl names; legged_gym's defaults for locomotion)."""

    iterations: int = 300
    num_steps_per_env: int = 24
    learning_rate: float = 1e-3
    # The critic's own rate (0: learning_rate), with the fixed schedule only (the adaptive one
    # sets one rate for all). ResiP's code trains its critic ~17x faster than its actor.
    critic_learning_rate: float = 0.0
    # MuJoCo Playground's 4 passes over each batch (legged_gym: 5): on 2 CPU cores the update is
    # compute-bound, ~45 % of an iteration, and 4 passes are what reach 10k steps/s end to end.
    num_learning_epochs: int = 4
    num_mini_batches: int = 4
    clip_param: float = 0.2
    gamma: float = 0.99
    lam: float = 0.95
    entropy_coef: float = 0.01
    value_loss_coef: float = 1.0
    # "adaptive" (legged_gym): the learning rate follows the KL to desired_kl, up to 1e-2;
    # "fixed": it stays at learning_rate (ResiP: with a sparse reward the KL is tiny, and the
    # adaptive rate climbed until the residual drifted off the base).
    schedule: str = "adaptive"
    desired_kl: float = 0.01
    # > 0: up to num_learning_epochs passes a batch, stopped once the policy's KL from the one
    # that collected it passes this (``policies/ppo_kl.py``; ResiP's code: 50 passes, 0.1).
    target_kl: float = 0.0
    # rsl-rl clips each value update to clip_param around the old value; ResiP's code does not
    # (its returns, and shaped ones, move by more than 0.2 between iterations).
    clipped_value_loss: bool = True
    max_grad_norm: float = 1.0
    # legged_gym uses 1.0 and (512, 256, 128) with 4096 worlds on a GPU. On 2 CPU cores the PPO
    # update was ~60 % of an iteration: (256, 128, 64) halves it, and a 0.5 exploration std
    # (0.125 rad of joint-target noise) let the first run stop crouching and walk within the
    # 60-minute budget (checkpoints/a1_walk/README.md).
    init_std: float = 0.5
    # > 0: exploration noise correlated over steps, eps_t = rho eps_{t-1} + sqrt(1 - rho^2) white_t
    # (``policies/colored_noise.py``); 0: rsl-rl's own white Gaussian.
    noise_correlation: float = 0.0
    actor_hidden: tuple[int, ...] = (256, 128, 64)
    critic_hidden: tuple[int, ...] = (256, 128, 64)
    save_every: int = 50
    # Iterations at the start that train only the critic (the actor, its std included, frozen):
    # residual RL's burn-in (Silver et al. 2018, "Residual Policy Learning"). With a sparse reward
    # the first advantages are noise until the value function knows the base's success odds.
    critic_warmup_iterations: int = 0
    # Stop (after the iteration block that crosses it) once training has run this long, and
    # export what it has: a wall-clock budget for a machine of known speed. 0 = no limit.
    max_minutes: float = 0.0
    keep_checkpoints: int = 3
    seed: int = 0
    torch_threads: int = 0  # 0 keeps torch's default
    progress: bool = True

    def __post_init__(self):
        for name in ("iterations", "num_steps_per_env", "num_learning_epochs", "num_mini_batches", "save_every"):
            if getattr(self, name) < 1:
                raise SpecError(f"RLConfig.{name}: must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.critic_warmup_iterations < self.iterations:
            raise SpecError(f"RLConfig.critic_warmup_iterations: in [0, iterations {self.iterations}), "
                            f"got {self.critic_warmup_iterations}")
        if not self.learning_rate > 0:
            raise SpecError(f"RLConfig.learning_rate: must be > 0, got {self.learning_rate}")
        if self.schedule not in ("adaptive", "fixed"):
            raise SpecError(f"RLConfig.schedule: 'adaptive' or 'fixed', got {self.schedule!r}")
        if self.critic_learning_rate < 0 or self.critic_learning_rate and self.schedule != "fixed":
            raise SpecError(f"RLConfig.critic_learning_rate: >= 0, and only with schedule 'fixed' "
                            f"(got {self.critic_learning_rate} with {self.schedule!r})")
        if not self.target_kl >= 0:
            raise SpecError(f"RLConfig.target_kl: >= 0 (0: no early stop), got {self.target_kl}")
        if not 0.0 <= self.noise_correlation < 1.0:
            raise SpecError(f"RLConfig.noise_correlation: in [0, 1), got {self.noise_correlation}")
        self.actor_hidden = tuple(int(h) for h in self.actor_hidden)
        self.critic_hidden = tuple(int(h) for h in self.critic_hidden)

    def distribution_cfg(self) -> dict[str, Any]:
        if self.noise_correlation > 0:
            return {"class_name": "rosmind.policies.colored_noise:ColoredGaussianDistribution",
                    "init_std": self.init_std, "correlation": self.noise_correlation}
        return {"class_name": "GaussianDistribution", "init_std": self.init_std}

    def runner_cfg(self) -> dict[str, Any]:
        stop = {"class_name": "rosmind.policies.ppo_kl:KLStopPPO", "target_kl": self.target_kl} if self.target_kl \
            else {"class_name": "PPO"}
        return {
            "num_steps_per_env": self.num_steps_per_env,
            "save_interval": self.save_every,
            "obs_groups": {"actor": ["policy"], "critic": ["critic"]},
            "logger": "tensorboard",
            "check_for_nan": True,
            "algorithm": {
                **stop, "num_learning_epochs": self.num_learning_epochs,
                "num_mini_batches": self.num_mini_batches, "clip_param": self.clip_param, "gamma": self.gamma,
                "lam": self.lam, "value_loss_coef": self.value_loss_coef, "entropy_coef": self.entropy_coef,
                "learning_rate": self.learning_rate, "max_grad_norm": self.max_grad_norm,
                "schedule": self.schedule, "desired_kl": self.desired_kl,
                "use_clipped_value_loss": self.clipped_value_loss},
            "actor": {"class_name": "MLPModel", "hidden_dims": list(self.actor_hidden), "activation": "elu",
                      "obs_normalization": True,
                      "distribution_cfg": self.distribution_cfg()},
            "critic": {"class_name": "MLPModel", "hidden_dims": list(self.critic_hidden), "activation": "elu",
                       "obs_normalization": True},
        }


def _vec_env_class():
    from rsl_rl.env import VecEnv
    from tensordict import TensorDict

    class TorchVecEnv(VecEnv):
        """rsl-rl's ``VecEnv`` (5.x: TensorDict observations) over a numpy ``LocomotionEnv``."""

        def __init__(self, env):
            self.env = env
            self.num_envs = env.num_envs
            self.num_actions = env.num_actions
            self.max_episode_length = env.max_episode_length
            self.device = "cpu"
            self.cfg = dataclasses.asdict(env.cfg)
            self._obs = self._wrap(env.reset())

        @property
        def episode_length_buf(self) -> torch.Tensor:
            return torch.from_numpy(self.env.episode_length)

        @episode_length_buf.setter
        def episode_length_buf(self, value: torch.Tensor) -> None:
            self.env.episode_length[:] = np.asarray(value.cpu(), dtype=np.int64)

        def _wrap(self, obs: dict[str, np.ndarray]) -> TensorDict:
            return TensorDict({k: torch.from_numpy(v) for k, v in obs.items()}, batch_size=[self.num_envs])

        def get_observations(self) -> TensorDict:
            return self._obs

        def step(self, actions: torch.Tensor):
            obs, rew, done, info = self.env.step(actions.detach().cpu().numpy())
            self._obs = self._wrap(obs)
            extras = {"time_outs": torch.from_numpy(info["time_outs"]), "log": info["log"]}
            return (self._obs, torch.from_numpy(rew.astype(np.float32)), torch.from_numpy(done.astype(np.int64)),
                    extras)

    return TorchVecEnv


def _runner_class():
    from rsl_rl.runners import OnPolicyRunner
    from safetensors.torch import load_file, save_file

    from rosmind.policies.train import load_optimizer_state, optimizer_state, update_latest

    class SafetensorsRunner(OnPolicyRunner):
        """``OnPolicyRunner`` whose saves are safetensors + JSON (no pickle)."""

        ckpt_root: Path
        keep = 3

        def save(self, path: str, infos: dict | None = None) -> None:
            it = self.current_learning_iteration
            folder = self.ckpt_root / f"iter_{it:06d}"
            folder.mkdir(parents=True, exist_ok=True)
            alg = self.alg
            tensors = {f"actor.{k}": v for k, v in alg._raw_actor.state_dict().items()}
            tensors |= {f"critic.{k}": v for k, v in alg._raw_critic.state_dict().items()}
            opt_tensors, opt_meta = optimizer_state(alg.optimizer)
            save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()} | opt_tensors,
                      str(folder / "train_state.safetensors"))
            (folder / "train_state.json").write_text(json.dumps({
                "iteration": it, "learning_rate": alg.learning_rate, "optimizer": opt_meta}, indent=1))
            update_latest(self.ckpt_root, folder.name, self.keep, pattern="iter_*")

        def load(self, path: str, load_cfg=None, strict: bool = True, map_location=None) -> dict:
            folder = Path(path)
            try:
                meta = json.loads((folder / "train_state.json").read_text())
                tensors = load_file(str(folder / "train_state.safetensors"))
            except (OSError, json.JSONDecodeError, ValueError) as e:
                raise UserError(f"{folder}: cannot resume, train state unreadable: {e}") from None
            alg = self.alg
            alg._raw_actor.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("actor.")})
            alg._raw_critic.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("critic.")})
            load_optimizer_state(alg.optimizer, tensors, meta["optimizer"])
            alg.learning_rate = meta["learning_rate"]
            self.current_learning_iteration = int(meta["iteration"]) + 1
            return {}

    return SafetensorsRunner


def export_locomotion(actor, env, task: str, out: Path, training: dict) -> Path:
    """The actor (mean output) and its observation normalizer as a ``ppo_locomotion`` checkpoint."""
    from rosmind.checkpoint import save_checkpoint
    from rosmind.policies.locomotion import LocomotionPolicy, LocomotionPolicyConfig

    ecfg = env.cfg
    cfg = LocomotionPolicyConfig(
        robot=ecfg.robot, history=ecfg.history, hidden_dims=tuple(
            m.out_features for m in actor.mlp if isinstance(m, torch.nn.Linear))[:-1],
        action_scale=ecfg.action_scale, action_clip=ecfg.action_clip, default_pose=tuple(env.default_pose),
        command_ranges=tuple(map(tuple, ecfg.command_ranges.tolist())),
        obs_eps=float(actor.obs_normalizer.eps), task=task)
    policy = LocomotionPolicy(cfg)
    sd = {f"mlp.{k[4:]}": v for k, v in actor.state_dict().items() if k.startswith("mlp.")}
    sd["obs_mean"] = actor.obs_normalizer._mean.reshape(-1)
    sd["obs_std"] = actor.obs_normalizer._std.reshape(-1)
    policy.load_state_dict(sd)
    return save_checkpoint(policy, out, training=training)


def build_env(task: str, env_overrides: dict[str, Any]):
    from rosmind.sim.locomotion import LOCOMOTION_TASKS, LocomotionEnv

    return LocomotionEnv(LOCOMOTION_TASKS.get(task).factory(**env_overrides))


def export_resip(actor, env, task: str, out: Path, training: dict) -> Path:
    """The actor's mean (its MLP) and observation normalizer as the residual of a ``resip``
    checkpoint on the env's base: ``(x - mean) / (std + eps)`` becomes ``obs_std = std + eps``."""
    from rosmind.checkpoint import save_checkpoint

    policy = env.policy
    sd = {f"mlp.{k[4:]}": v for k, v in actor.state_dict().items() if k.startswith("mlp.")}
    sd["obs_mean"] = actor.obs_normalizer._mean.reshape(-1)
    sd["obs_std"] = actor.obs_normalizer._std.reshape(-1) + actor.obs_normalizer.eps
    policy.load_state_dict(sd)
    return save_checkpoint(policy, out, training={**training, "base": env.cfg.base})


def _build_resip_env(task: str, env_overrides: dict[str, Any]):
    from rosmind.policies.resip.env import ResidualEnv, ResidualEnvConfig

    return ResidualEnv(ResidualEnvConfig(task=task, **env_overrides))


@dataclass(frozen=True)
class RLFamily:
    """What the one entry point needs per RL family: its env (config class and builder), how the
    trained actor becomes a checkpoint, RLConfig defaults, and whether the actor's last layer
    starts at zero (a residual that begins as the base policy)."""

    env_config: str  # "module:Class"
    build_env: Any
    export: Any
    rl_defaults: dict = dataclasses.field(default_factory=dict)
    zero_last_layer: bool = False


RL_FAMILIES = {
    "ppo_locomotion": RLFamily("rosmind.sim.locomotion:LocomotionConfig", build_env, export_locomotion),
    # ResiP's public settings: gamma 0.999, lambda 0.95, clip 0.2, 2x256 MLPs, a residual that
    # starts at zero (the base policy) with small exploration.
    "resip": RLFamily("rosmind.policies.resip.env:ResidualEnvConfig", _build_resip_env, export_resip,
                      {"gamma": 0.999, "lam": 0.95, "actor_hidden": (256, 256), "critic_hidden": (256, 256),
                       "init_std": 0.15, "learning_rate": 1e-4, "schedule": "fixed", "num_steps_per_env": 64,
                       "entropy_coef": 0.0}, zero_last_layer=True),
}


def _env_config_class(family: RLFamily) -> type:
    import importlib

    mod, _, name = family.env_config.partition(":")
    return getattr(importlib.import_module(mod), name)


def parse_overrides(items: list[str], env_config: type | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``["rl.iterations=5", "env.num_envs=64"]`` -> (rl overrides, env overrides), values as JSON."""
    import typing

    from rosmind.checkpoint import coerce
    from rosmind.policies.presets import parse_value

    if env_config is None:
        from rosmind.sim.locomotion import LocomotionConfig as env_config
    out: dict[str, dict[str, Any]] = {"rl": {}, "env": {}}
    classes = {"rl": RLConfig, "env": env_config}
    for item in items:
        key, eq, text = item.partition("=")
        section, dot, name = key.partition(".")
        if not eq or not dot or section not in out:
            raise UserError(f"override {item!r}: expected rl.<field>=<value> or env.<field>=<value>")
        hints = typing.get_type_hints(classes[section])
        if name not in hints:
            valid = ", ".join(sorted(f.name for f in dataclasses.fields(classes[section])))
            raise UserError(f"unknown override key {key}; valid {section}.* keys: {valid}")
        try:
            out[section][name] = coerce(parse_value(text, hints[name]), hints[name], key)
        except SpecError as e:
            raise UserError(f"override {item}: {e}") from None
    return out["rl"], out["env"]


def train_rl(task: str, out: str | Path, overrides: list[str], resume: bool = False,
             family: str = "ppo_locomotion") -> Path:
    """Train PPO for the RL ``family`` on ``task``; returns the exported checkpoint folder."""
    out = Path(out)
    if family not in RL_FAMILIES:
        raise UserError(f"{family!r} is not trained by RL; RL families: {', '.join(RL_FAMILIES)}")
    fam = RL_FAMILIES[family]
    rl_kw, env_kw = parse_overrides(overrides, _env_config_class(fam))
    run_json = out / "run.json"
    if resume:
        if not run_json.is_file():
            raise UserError(f"--resume: {run_json} does not exist")
        saved = json.loads(run_json.read_text())
        if saved.get("task") != task or saved.get("family", "ppo_locomotion") != family:
            raise UserError(f"--resume: {out} trained {saved.get('family', 'ppo_locomotion')} on task "
                            f"{saved.get('task')!r}, not {family} on {task!r}")
        rl_kw = {**saved["rl_overrides"], **rl_kw}
        env_kw = {**saved["env_overrides"], **env_kw}
    elif run_json.exists():
        raise UserError(f"{out} already holds a run; pass --resume or choose another --out")
    try:
        rcfg = RLConfig(**{**fam.rl_defaults, **rl_kw})
        env = fam.build_env(task, {"seed": rl_kw.get("seed", 0), **env_kw})
    except SpecError as e:
        raise UserError(str(e)) from None
    if rcfg.torch_threads:
        torch.set_num_threads(rcfg.torch_threads)
    torch.manual_seed(rcfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["rosmind", *sys.argv[1:]])
    first_command = saved["command"] if resume else command  # a resume keeps the run's own command
    resumes = [*saved.get("resumed", []), command] if resume else []
    run_json.write_text(json.dumps({
        "task": task, "family": family, "command": first_command, "resumed": resumes, "rl_overrides": rl_kw,
        "env_overrides": env_kw, "rl": dataclasses.asdict(rcfg),
        "env": json.loads(json.dumps(dataclasses.asdict(env.cfg), default=list))}, indent=1))
    Runner = _runner_class()
    vec = _vec_env_class()(env)
    runner = Runner(vec, rcfg.runner_cfg(), log_dir=str(out / "tb"), device="cpu")
    runner.ckpt_root = out / "checkpoints"
    if rcfg.critic_learning_rate:  # rsl-rl's one Adam, with a parameter group per network
        alg = runner.alg
        alg.optimizer = type(alg.optimizer)([
            {"params": list(alg._raw_actor.parameters()), "lr": rcfg.learning_rate},
            {"params": list(alg._raw_critic.parameters()), "lr": rcfg.critic_learning_rate}])
    runner.keep = rcfg.keep_checkpoints
    if fam.zero_last_layer and not resume:  # the residual starts as "no change": the base policy
        last = [m for m in runner.alg._raw_actor.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.zero_()
    start = time.monotonic()
    # A resumed run's wall time goes on from where it stopped (max_minutes counts this session)
    lines = (out / PROGRESS).read_text().strip().splitlines() if resume and (out / PROGRESS).is_file() else []
    before = json.loads(lines[-1]) if lines else {}  # the last progress line: wall time, episode counts
    wall_before = float(before.get("wall_s", 0.0))
    training = {"task": task, "family": family, "rl": dataclasses.asdict(rcfg)}
    if resume:
        latest = out / "checkpoints" / "latest"
        if not latest.exists():
            raise UserError(f"--resume: no checkpoint under {out / 'checkpoints'}")
        runner.load(str(latest.resolve()))
    # rsl-rl prints a block per iteration; progress=false keeps it out of test output.
    quiet = contextlib.nullcontext() if rcfg.progress else contextlib.redirect_stdout(io.StringIO())
    first = not resume
    steps_per_iteration = rcfg.num_steps_per_env * env.num_envs
    with quiet, open(out / PROGRESS, "a") as progress:
        # Blocks of save_every iterations (each ends with a checkpoint), until done or out of time.
        while (remaining := rcfg.iterations - runner.current_learning_iteration) > 0:
            if rcfg.max_minutes and time.monotonic() - start > rcfg.max_minutes * 60:
                break
            warm = rcfg.critic_warmup_iterations - runner.current_learning_iteration
            block = min(remaining, rcfg.save_every, warm if warm > 0 else remaining)
            # Adam leaves a parameter without a gradient alone: a frozen actor stays exactly as it is.
            for prm in runner.alg._raw_actor.parameters():
                prm.requires_grad_(warm <= 0)
            runner.learn(block, init_at_random_ep_len=first)
            runner.current_learning_iteration += 1  # learn() leaves it at its last iteration
            first = False
            it = runner.current_learning_iteration
            # One line a block: the learning curve (an env that counts finished episodes and
            # successes, as ResidualEnv does, adds them: success per block is their difference).
            counts = {k: v + int(before.get(k, 0)) for k, v in getattr(env, "finished", {}).items()}  # over resumes
            progress.write(json.dumps({"iteration": it, "env_steps": it * steps_per_iteration,
                                       "wall_s": round(wall_before + time.monotonic() - start, 1), **counts}) + "\n")
            progress.flush()
    wall = wall_before + time.monotonic() - start
    done = runner.current_learning_iteration
    training |= {"iterations": done, "env_steps": int(done * rcfg.num_steps_per_env * env.num_envs),
                 "wall_s": round(wall, 1), "stopped_by": "max_minutes" if done < rcfg.iterations else "iterations"}
    path = fam.export(runner.alg.get_policy(), env, task, out / "checkpoint", training)
    env.close()
    return path

"""DiffusionConfig: the single source of truth of the Diffusion Policy family."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from rosmind.errors import SpecError
from rosmind.policies.augment import check_state_noise
from rosmind.policy import PolicyConfig

from .schedulers import BETA_SCHEDULES, PREDICTION_TYPES, SCHEDULERS

# Per-step shapes of the pick_place observation keys on the Panda (8 joints incl. gripper).
PICK_PLACE_SHAPES: dict[str, tuple[int, ...]] = {
    "joint_pos": (8,), "ee_pose": (7,), "object_poses": (1, 7), "goal_pose": (7,),
}


RELATIVE_OBS_KEYS = ("ee_pose", "object_poses", "goal_pose")
RELATIVE_OBS_SCALE = 0.2  # metres


@dataclass
class DenoiserConfig:
    """The denoiser's fields: the conditional UNet, its noise schedule and sampler, the image
    encoders and training noise. ``DiffusionConfig`` has them; so has any family that samples
    with these modules (RDP's latent diffusion), which passes them on as they are."""

    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    sampler: str = "ddim"
    num_inference_steps: int = 10
    # Two levels: the 3-level (64,128,256) UNet costs ~4x the CPU time per denoising step (per-op
    # overhead dominates at batch 1) and misses the 25 ms DDIM-10 budget on 2 cores.
    down_dims: tuple[int, ...] = (64, 128)
    step_embed_dim: int = 64
    kernel_size: int = 5
    n_groups: int = 8
    image_feature_dim: int = 64
    image_channels: tuple[int, ...] = (32, 64, 128)
    image_crop_ratio: float = 0.9
    # Run time: a camera frame of another size is resized to obs_shapes (else it is refused).
    image_resize: bool = False
    seed: int = 0
    # Training only: Gaussian noise per obs key in its own units (rosmind.policies.augment), so
    # the policy holds up to encoder/perception noise: e.g. {"joint_pos": [0.005]*7 + [0.001]}.
    state_noise: dict[str, tuple[float, ...]] = field(default_factory=dict)
    # > 0: the low-dimensional observations are normalized between their q and 1-q quantiles
    # over the dataset instead of their min and max, and saturate at OBS_CLIP beyond (a force
    # sensor's rare contact spikes otherwise set the range and squash the working band).
    obs_quantile: float = 0.0

    def check_obs_quantile(self) -> None:
        if not (math.isfinite(self.obs_quantile) and 0 <= self.obs_quantile < 0.25):
            raise SpecError(f"{type(self).__name__}.obs_quantile: in [0, 0.25), got {self.obs_quantile!r}")


@dataclass
class DiffusionConfig(PolicyConfig, DenoiserConfig):
    """CNN-based Diffusion Policy (Chi et al. 2023) with DDPM training and DDIM sampling.

    ``obs_shapes`` (per-step shape of each obs key) and ``action_dim`` are filled in from the
    dataset by the training loop; the defaults are the Panda pick_place state keys. Keys named
    ``camera/<name>/rgb`` (shape ``[H, W, 3]``) go through a CNN encoder.
    """

    obs_keys: tuple[str, ...] = ("joint_pos", "ee_pose", "object_poses", "goal_pose")
    n_obs_steps: int = 2
    horizon: int = 16
    n_action_steps: int = 8
    obs_shapes: dict[str, tuple[int, ...]] = field(default_factory=lambda: dict(PICK_PLACE_SHAPES))
    action_dim: int = 8
    # Predict the chunk relative to the newest joint_pos (the motion, not where the arm is):
    # the same normalized error is then a few times smaller in radians (see the closing note
    # of the learning-loop issue: absolute chunks reached 0/16 at 4k steps, off by ~0.2 rad).
    relative_actions: bool = False
    # Also condition on where things are relative to the hand (robomimic's object features):
    # per step, object - ee, goal - ee and goal - object positions, in metres / RELATIVE_OBS_SCALE.
    # Absolute poses alone leave the UNet to subtract them itself, and a cloned policy then
    # undershoots long carries by centimetres.
    relative_obs: bool = False
    # Training only: also regress, from the newest step's observation features, where the
    # objects and the goal are relative to the hand (``relative_positions`` of the dataset's
    # ``ee_pose``/``object_poses``/``goal_pose``, which the policy does not observe), weighted
    # by this against the diffusion loss. The image encoders then learn to find the objects
    # from the pose labels sim data carries, as Levine et al. (2016) pretrain their spatial-
    # softmax encoder on object poses; the head is unused at run time.
    aux_pose_weight: float = 0.0
    # Run time: sample this many chunks per observation and execute their medoid (the one
    # closest, summed over its executed rows, to the others in normalized units): the majority
    # mode instead of a single draw, which can land in a rare one (turning back mid-lift).
    # 1 = one draw, as in the paper. The encoders run once; the UNet runs on n_samples rows.
    n_samples: int = 1
    # Fields that leave the weights' shapes and meaning alone: --resume and train.init_from may
    # change them (the image encoders are convolutions + spatial softmax: any crop size fits).
    resumable_fields: ClassVar[tuple[str, ...]] = ("state_noise", "image_crop_ratio", "image_resize", "n_samples")

    @property
    def aux_keys(self) -> tuple[str, ...]:
        """Dataset keys the training loop must supply (as ``future/<key>``) for the auxiliary loss."""
        return RELATIVE_OBS_KEYS if self.aux_pose_weight > 0 else ()

    def __post_init__(self):
        super().__post_init__()
        name = type(self).__name__
        self.down_dims = tuple(int(d) for d in self.down_dims)
        self.image_channels = tuple(int(c) for c in self.image_channels)
        self.obs_shapes = {k: tuple(int(s) for s in v) for k, v in self.obs_shapes.items()}

        def bad(fld: str, msg: str) -> SpecError:
            return SpecError(f"{name}.{fld}: {msg}")

        if self.relative_actions and "joint_pos" not in self.obs_keys:
            raise bad("relative_actions", "needs 'joint_pos' among obs_keys (chunks are relative to it)")
        if self.relative_actions and math.prod(self.obs_shapes.get("joint_pos", ())) != self.action_dim:
            raise bad("relative_actions", f"joint_pos shape {list(self.obs_shapes.get('joint_pos', ()))} "
                                          f"must match action_dim {self.action_dim}")
        if not self.obs_keys:
            raise bad("obs_keys", "needs at least one observation key")
        need = [k for k in RELATIVE_OBS_KEYS if k not in self.obs_keys]
        if self.relative_obs and need:
            raise bad("relative_obs", f"needs obs key(s) {need} among obs_keys {list(self.obs_keys)}")
        self.check_obs_quantile()
        if not 1 <= self.n_samples <= 64:
            raise bad("n_samples", f"chunks drawn per observation, in [1, 64], got {self.n_samples}")
        if not math.isfinite(self.aux_pose_weight) or self.aux_pose_weight < 0:
            raise bad("aux_pose_weight", f"must be a finite number >= 0, got {self.aux_pose_weight}")
        lacking = [k for k in self.aux_keys if k not in self.obs_shapes]
        if lacking:
            raise bad("aux_pose_weight", f"needs the pose keys {lacking} in the dataset (training targets, not "
                                         f"observations); it has {sorted(self.obs_shapes)}")
        missing = [k for k in self.obs_keys if k not in self.obs_shapes]
        if missing:
            raise bad("obs_shapes", f"no shape for obs key(s) {missing}; has {sorted(self.obs_shapes)}")
        for k in self.obs_keys:
            if k.startswith("camera/") and (len(self.obs_shapes[k]) != 3 or self.obs_shapes[k][2] != 3):
                raise bad("obs_shapes", f"camera key {k!r} needs [H, W, 3], got {list(self.obs_shapes[k])}")
        self.state_noise = check_state_noise(self.state_noise, self.obs_keys, self.obs_shapes, name)
        if self.action_dim < 1:
            raise bad("action_dim", f"must be >= 1, got {self.action_dim}")
        if self.n_obs_steps - 1 + self.n_action_steps > self.horizon:
            raise bad("horizon", f"must cover n_obs_steps-1 + n_action_steps = "
                                 f"{self.n_obs_steps - 1 + self.n_action_steps}, got {self.horizon}")
        if not self.down_dims:
            raise bad("down_dims", "needs at least one level")
        mult = 2 ** (len(self.down_dims) - 1)
        if self.horizon % mult:
            raise bad("horizon", f"must be divisible by {mult} (2^(levels-1) for down_dims "
                                 f"{list(self.down_dims)}), got {self.horizon}")
        for d in self.down_dims:
            if d % self.n_groups:
                raise bad("down_dims", f"every entry must be divisible by n_groups={self.n_groups}, got {d}")
        if self.sampler not in SCHEDULERS:
            raise bad("sampler", f"expected one of {sorted(SCHEDULERS)}, got {self.sampler!r}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise bad("beta_schedule", f"expected one of {BETA_SCHEDULES}, got {self.beta_schedule!r}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise bad("prediction_type", f"expected one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise bad("num_inference_steps", f"must be in [1, num_train_timesteps={self.num_train_timesteps}], "
                                             f"got {self.num_inference_steps}")
        if self.step_embed_dim % 2 or self.step_embed_dim < 4:
            raise bad("step_embed_dim", f"must be even and >= 4, got {self.step_embed_dim}")
        if not 0.1 <= self.image_crop_ratio <= 1.0:
            raise bad("image_crop_ratio", f"must be in [0.1, 1], got {self.image_crop_ratio}")

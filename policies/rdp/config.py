"""RDPConfig: the single source of truth of the Reactive Diffusion Policy family."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

from rosmind.errors import SpecError
from rosmind.policies.diffusion.config import DenoiserConfig, DiffusionConfig
from rosmind.policy import PolicyConfig

from .tokenizer import DOWNSAMPLE

WIPE_SHAPES: dict[str, tuple[int, ...]] = {"joint_pos": (8,), "ee_pose": (7,), "wrench": (6,), "goal_pose": (7,)}
FAST_INPUTS = ("live", "held", "zero")


@dataclass
class RDPConfig(PolicyConfig, DenoiserConfig):
    """RDP (Xue et al., RSS 2025): a slow latent diffusion policy over chunk latents and a fast
    asymmetric decoder that reads the newest force sample every control tick.

    ``horizon`` is the training window (``n_obs_steps - 1`` past steps plus the chunk of
    ``chunk = horizon - n_obs_steps + 1`` steps, divisible by 4); the slow policy plans every
    ``n_action_steps`` ticks. ``obs_keys`` condition the slow policy; ``fast_keys`` (per-step,
    low-dimensional: ``wrench``, or a taxel pad ``tactile/<name>`` reduced to its first
    ``tactile_pca_dim`` principal components) feed the decoder. Actions are
    relative to the newest joint_pos (RDP: relative to the current pose).

    Training (one loop, two stages): the tokenizer for ``tokenizer_steps`` (L1 + ``kl_weight`` KL),
    then, frozen, it encodes chunks into latents the latent diffusion learns (the Diffusion
    Policy modules: UNet, schedulers, observation encoders, normalizer).

    ``fast_input`` (run time, an ablation): ``live`` the newest force each tick; ``held`` the
    force of the chunk's first tick for the whole chunk; ``zero`` a zero force.
    """

    obs_keys: tuple[str, ...] = ("joint_pos", "ee_pose", "wrench", "goal_pose")
    fast_keys: tuple[str, ...] = ("wrench",)
    n_obs_steps: int = 1
    horizon: int = 32
    n_action_steps: int = 16
    obs_shapes: dict[str, tuple[int, ...]] = field(default_factory=lambda: dict(WIPE_SHAPES))
    action_dim: int = 8
    # stage 1: tokenizer
    latent_dim: int = 4
    encoder_channels: tuple[int, ...] = (32, 64)
    decoder_hidden: int = 32
    fast_embed: int = 16
    latent_feature: int = 32
    kl_weight: float = 1e-6
    # Not in the paper: extra noise on the latent while the tokenizer trains (0 = the paper's
    # VAE). With it the decoder takes more of a chunk's timing (when the sponge touches, when
    # the board moves) from the force stream instead of the latent, so it reacts within a chunk.
    latent_noise: float = 0.0
    # Not in the paper either: the decoder reconstructs the chunk shifted by a random -s..s ticks
    # (edge rows repeated), with the force stream shifted alike, from the latent of the unshifted
    # chunk. The latent then says what the chunk does and cannot say exactly when; the force
    # stream must (the sponge touches, the board moves). 0 = off.
    latent_time_shift: int = 0
    tokenizer_steps: int = 3000
    # A tactile fast key (tactile/<pad>) enters the decoder as its first principal components,
    # fitted on the dataset and kept in the checkpoint (RDP: marker offsets -> PCA 15-D).
    tactile_pca_dim: int = 15
    # stage 2: latent diffusion: DenoiserConfig's fields, with 8 DDIM steps and kernel 3 (over 8
    # latent steps instead of 16 action steps)
    num_inference_steps: int = 8
    kernel_size: int = 3
    fast_input: str = "live"
    resumable_fields: ClassVar[tuple[str, ...]] = ("state_noise", "image_crop_ratio", "image_resize", "fast_input")

    def __post_init__(self):
        super().__post_init__()
        name = type(self).__name__
        self.fast_keys = tuple(self.fast_keys)
        self.encoder_channels = tuple(int(c) for c in self.encoder_channels)
        self.obs_shapes = {k: tuple(int(s) for s in v) for k, v in self.obs_shapes.items()}
        if not self.fast_keys:
            raise SpecError(f"{name}.fast_keys: the fast decoder needs at least one per-step key (e.g. 'wrench')")
        missing = [k for k in (*self.obs_keys, *self.fast_keys) if k not in self.obs_shapes]
        if missing:
            raise SpecError(f"{name}.obs_shapes: no shape for key(s) {missing}; has {sorted(self.obs_shapes)}")
        images = [k for k in self.fast_keys if k.startswith("camera/")]
        if images:
            raise SpecError(f"{name}.fast_keys: must be low-dimensional (force, tactile PCA), got {images}")
        if "joint_pos" not in self.obs_keys:
            raise SpecError(f"{name}.obs_keys: needs 'joint_pos' (chunks are relative to the current pose)")
        if self.chunk < DOWNSAMPLE or self.chunk % DOWNSAMPLE:
            raise SpecError(f"{name}.horizon: the chunk (horizon - n_obs_steps + 1 = {self.chunk}) must be a "
                            f"positive multiple of {DOWNSAMPLE} (the tokenizer's temporal compression)")
        if self.n_action_steps > self.chunk:
            raise SpecError(f"{name}.n_action_steps: at most the chunk length {self.chunk}, got {self.n_action_steps}")
        if len(self.encoder_channels) != 2:
            raise SpecError(f"{name}.encoder_channels: two entries (one per stride-2 conv), got {self.encoder_channels}")
        for f in ("latent_dim", "decoder_hidden", "fast_embed", "latent_feature", "tactile_pca_dim"):
            if getattr(self, f) < 1:
                raise SpecError(f"{name}.{f}: must be >= 1, got {getattr(self, f)}")
        if self.kl_weight < 0 or self.tokenizer_steps < 0 or self.latent_noise < 0 or self.latent_time_shift < 0:
            raise SpecError(f"{name}: kl_weight, latent_noise, latent_time_shift and tokenizer_steps must be >= 0")
        if self.latent_time_shift >= self.chunk:
            raise SpecError(f"{name}.latent_time_shift: less than the chunk ({self.chunk}), got {self.latent_time_shift}")
        self.check_obs_quantile()
        if self.fast_input not in FAST_INPUTS:
            raise SpecError(f"{name}.fast_input: one of {FAST_INPUTS}, got {self.fast_input!r}")
        self.latent_config()  # the latent diffusion's own checks (UNet depth vs latent length, ...)

    @property
    def chunk(self) -> int:
        return self.horizon - self.n_obs_steps + 1

    def latent_config(self) -> DiffusionConfig:
        """The inner Diffusion Policy over latents ``[chunk / 4, latent_dim]``."""
        length = self.chunk // DOWNSAMPLE
        kw = {f.name: getattr(self, f.name) for f in fields(DenoiserConfig)}
        try:
            return DiffusionConfig(robot=self.robot, obs_keys=self.obs_keys, n_obs_steps=self.n_obs_steps,
                                   horizon=length, n_action_steps=max(1, length - self.n_obs_steps + 1),
                                   obs_shapes=dict(self.obs_shapes),
                                   action_dim=self.latent_dim, **kw)
        except SpecError as e:
            raise SpecError(f"{type(self).__name__} (latent diffusion over {length} latent steps): {e}") from None

"""CarpConfig: the single source of truth of the CARP family."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from rosmind.errors import SpecError
from rosmind.policies.augment import check_state_noise
from rosmind.policies.diffusion.config import RELATIVE_OBS_KEYS
from rosmind.policy import PolicyConfig

PICK_PLACE_SHAPES: dict[str, tuple[int, ...]] = {
    "joint_pos": (8,), "ee_pose": (7,), "object_poses": (1, 7), "goal_pose": (7,),
}
SAMPLINGS = ("greedy", "top_k", "expected")


@dataclass
class CarpConfig(PolicyConfig):
    """CARP (Gong et al. 2025): a multi-scale action tokenizer (stage 1) and a coarse-to-fine
    autoregressive transformer over its scales (stage 2), trained by one loop.

    Tokenizer: each action dimension's ``horizon``-step sequence is encoded (shared 1-D conv
    encoder) to ``latent_dim`` channels x ``horizon / downsample`` positions, quantized by
    residual multi-scale VQ at ``scales`` (the last must equal the latent length) with one
    shared codebook of ``codebook_size`` codes.

    Training: ``compute_loss`` trains the tokenizer for the first ``tokenizer_steps`` calls
    (counted in a buffer, so resume keeps the stage), then freezes it and trains the
    transformer with cross-entropy on its codes.

    Actions: with ``relative_actions`` the tokenizer sees each chunk relative to the newest
    ``joint_pos`` (the motion, not where the arm is), scaled by ``delta_limit_fraction`` of the
    largest motion the robot spec's velocity limits allow over a chunk; otherwise the absolute
    targets min-max normalized to [-1, 1].

    ``obs_min_range``: the observation normalizer divides no element by less than this range
    (``Normalizer.min_range``). Elements that barely varied in the demonstrations (the gripper's
    quaternion components spanned 0.001-0.04 here) are otherwise amplified up to 2000x, and the
    transformer, unlike the diffusion UNet, turned a one-degree tilt into an unrelated chunk.

    ``prefix_noise``: during stage 2, each code of the scales before the last is replaced, with
    this probability, by its 2nd or 3rd nearest code in the teacher-forced input, and the
    later scales' targets are the nearest codes of what that slipped prefix leaves over
    (``MultiScaleTokenizer.perturbed_codes``). Pure teacher forcing only ever shows the
    transformer prefixes the tokenizer itself would choose; sampling does not, and the finer
    scales then add residuals meant for another coarse code. 0 trains as the paper does.
    ``obs_noise``: the standard deviation of Gaussian noise added to the observation features
    (normalized units) during stage 2, so that states near the demonstrations get nearby codes.
    Both only shape training; they and the decoding fields leave the weights' meaning alone, so
    ``--resume`` may change them (``resumable_fields``).

    ``dim_autoregressive``: the codes of the action dimensions at one position are predicted
    one after another (each given the lower ones) instead of independently; see
    ``transformer.py``.

    Sampling: ``"greedy"`` (argmax) or ``"top_k"`` (``top_k`` most likely codes, softmax at
    ``temperature``) from the policy's seeded generator, or ``"expected"``: each scale adds the
    softmax-weighted mean of the code embeddings instead of one code (deterministic, one mode;
    see ``sampling.py``).
    """

    obs_keys: tuple[str, ...] = ("joint_pos", "ee_pose", "object_poses", "goal_pose")
    n_obs_steps: int = 2
    horizon: int = 16
    n_action_steps: int = 8
    obs_shapes: dict[str, tuple[int, ...]] = field(default_factory=lambda: dict(PICK_PLACE_SHAPES))
    action_dim: int = 8
    # stage 1: tokenizer
    scales: tuple[int, ...] = (1, 2, 3, 4)
    downsample: int = 4
    latent_dim: int = 8
    codebook_size: int = 256
    tokenizer_hidden: int = 32
    commitment_weight: float = 0.25
    tokenizer_steps: int = 2000
    # stage 2: transformer
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    dropout: float = 0.1
    dim_autoregressive: bool = False
    prefix_noise: float = 0.0
    obs_noise: float = 0.0
    # Stage 2 only: noise on the raw observations in their units, as DiffusionConfig.state_noise.
    state_noise: dict[str, tuple[float, ...]] = field(default_factory=dict)
    relative_actions: bool = True
    relative_obs: bool = False  # hand-relative object/goal positions, as DiffusionConfig.relative_obs
    obs_min_range: float = 0.0  # floor of the normalizer's per-element obs range (0: plain min-max)
    delta_limit_fraction: float = 0.5
    sampling: str = "top_k"
    top_k: int = 3
    temperature: float = 1.0
    seed: int = 0

    resumable_fields: ClassVar[tuple[str, ...]] = ("prefix_noise", "obs_noise", "state_noise", "sampling", "top_k", "temperature")

    def __post_init__(self):
        super().__post_init__()
        name = type(self).__name__
        self.scales = tuple(int(s) for s in self.scales)
        self.obs_shapes = {k: tuple(int(s) for s in v) for k, v in self.obs_shapes.items()}

        def bad(fld: str, msg: str) -> SpecError:
            return SpecError(f"{name}.{fld}: {msg}")

        if not self.obs_keys:
            raise bad("obs_keys", "needs at least one observation key")
        missing = [k for k in self.obs_keys if k not in self.obs_shapes]
        if missing:
            raise bad("obs_shapes", f"no shape for obs key(s) {missing}; has {sorted(self.obs_shapes)}")
        self.state_noise = check_state_noise(self.state_noise, self.obs_keys, self.obs_shapes, name)
        images = [k for k in self.obs_keys if k.startswith("camera/")]
        if images:
            raise bad("obs_keys", f"CARP here conditions on low-dimensional state only, got camera key(s) {images}")
        need = [k for k in RELATIVE_OBS_KEYS if k not in self.obs_keys]
        if self.relative_obs and need:
            raise bad("relative_obs", f"needs obs key(s) {need} among obs_keys {list(self.obs_keys)}")
        if self.action_dim < 1:
            raise bad("action_dim", f"must be >= 1, got {self.action_dim}")
        if self.n_obs_steps - 1 + self.n_action_steps > self.horizon:
            raise bad("horizon", f"must cover n_obs_steps-1 + n_action_steps = "
                                 f"{self.n_obs_steps - 1 + self.n_action_steps}, got {self.horizon}")
        if self.downsample not in (1, 2, 4, 8) or self.horizon % self.downsample:
            raise bad("downsample", f"must be 1, 2, 4 or 8 and divide horizon={self.horizon}, got {self.downsample}")
        length = self.horizon // self.downsample
        if not self.scales or any(s < 1 for s in self.scales) or list(self.scales) != sorted(self.scales):
            raise bad("scales", f"must be a non-empty non-decreasing list of positive lengths, got {list(self.scales)}")
        if self.scales[-1] != length:
            raise bad("scales", f"the last scale must equal the latent length horizon/downsample = {length}, "
                                f"got {list(self.scales)}")
        for f in ("latent_dim", "codebook_size", "tokenizer_hidden", "d_model", "n_layers", "n_heads"):
            if getattr(self, f) < 1:
                raise bad(f, f"must be >= 1, got {getattr(self, f)}")
        if self.codebook_size < 2:
            raise bad("codebook_size", f"must be >= 2, got {self.codebook_size}")
        if self.d_model % self.n_heads:
            raise bad("d_model", f"must be divisible by n_heads={self.n_heads}, got {self.d_model}")
        if self.tokenizer_steps < 0:
            raise bad("tokenizer_steps", f"must be >= 0, got {self.tokenizer_steps}")
        if not 0 <= self.dropout < 1:
            raise bad("dropout", f"must be in [0, 1), got {self.dropout}")
        if not 0 <= self.prefix_noise < 1:
            raise bad("prefix_noise", f"must be in [0, 1), got {self.prefix_noise}")
        if not self.obs_noise >= 0:
            raise bad("obs_noise", f"must be >= 0, got {self.obs_noise}")
        if self.commitment_weight < 0:
            raise bad("commitment_weight", f"must be >= 0, got {self.commitment_weight}")
        if self.relative_actions:
            if "joint_pos" not in self.obs_keys:
                raise bad("relative_actions", "needs 'joint_pos' among obs_keys (chunks are relative to it)")
            if math.prod(self.obs_shapes["joint_pos"]) != self.action_dim:
                raise bad("relative_actions", f"joint_pos has {math.prod(self.obs_shapes['joint_pos'])} values, "
                                              f"action_dim is {self.action_dim}; they must match")
        if not self.obs_min_range >= 0:
            raise bad("obs_min_range", f"must be >= 0, got {self.obs_min_range}")
        if not 0 < self.delta_limit_fraction <= 1:
            raise bad("delta_limit_fraction", f"must be in (0, 1], got {self.delta_limit_fraction}")
        if self.sampling not in SAMPLINGS:
            raise bad("sampling", f"expected one of {list(SAMPLINGS)}, got {self.sampling!r}")
        if not 1 <= self.top_k <= self.codebook_size:
            raise bad("top_k", f"must be in [1, codebook_size={self.codebook_size}], got {self.top_k}")
        if not self.temperature > 0:
            raise bad("temperature", f"must be > 0, got {self.temperature}")

    @property
    def latent_length(self) -> int:
        return self.horizon // self.downsample

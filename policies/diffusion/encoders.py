"""Observation encoders: low-dimensional keys are flattened and concatenated; each camera has
its own small ResNet-style CNN (GroupNorm, never BatchNorm, so batch size and EMA do not
interact with running statistics) ending in a spatial softmax (Levine et al. 2016).

Images are uint8 ``[..., H, W, 3]``; training takes a random crop of ``crop_ratio`` of each
side, evaluation the centre crop (diffusion_policy's ``CropRandomizer``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rosmind.dataset import is_image_key

from .config import RELATIVE_OBS_SCALE


def _groups(c: int) -> int:
    return math.gcd(8, c)


class ResBlock2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.GroupNorm(_groups(c_out), c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.GroupNorm(_groups(c_out), c_out))
        self.skip = (nn.Identity() if c_in == c_out and stride == 1 else
                     nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.GroupNorm(_groups(c_out), c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class SpatialSoftmax(nn.Module):
    """``[N, C, H, W] -> [N, 2K]``: expected (x, y) in [-1, 1] of K learned keypoint maps."""

    def __init__(self, c_in: int, num_kp: int):
        super().__init__()
        self.kp = nn.Conv2d(c_in, num_kp, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.kp(x)
        n, k, hh, ww = h.shape
        attn = torch.softmax(h.reshape(n, k, hh * ww), dim=-1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, hh, device=x.device),
                                torch.linspace(-1, 1, ww, device=x.device), indexing="ij")
        ex = (attn * xs.reshape(1, 1, -1)).sum(-1)
        ey = (attn * ys.reshape(1, 1, -1)).sum(-1)
        return torch.cat([ex, ey], dim=-1)


class ImageEncoder(nn.Module):
    """uint8 ``[N, H, W, 3]`` -> ``[N, feature_dim]``."""

    def __init__(self, height: int, width: int, feature_dim: int = 64, channels: tuple[int, ...] = (32, 64, 128),
                 num_kp: int = 32, crop_ratio: float = 0.9):
        super().__init__()
        self.crop_hw = (max(8, round(height * crop_ratio)), max(8, round(width * crop_ratio)))
        layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 5, 2, 2, bias=False),
                                   nn.GroupNorm(_groups(channels[0]), channels[0]), nn.ReLU()]
        c = channels[0]
        for i, co in enumerate(channels):
            layers.append(ResBlock2d(c, co, 1 if i == 0 else 2))
            c = co
        self.backbone = nn.Sequential(*layers)
        self.pool = SpatialSoftmax(c, num_kp)
        self.head = nn.Sequential(nn.Linear(2 * num_kp, feature_dim), nn.ReLU(), nn.Linear(feature_dim, feature_dim))
        self.feature_dim = feature_dim

    def crop(self, img: torch.Tensor, random: bool) -> torch.Tensor:
        """``[N, H, W, C]`` -> ``[N, ch, cw, C]``: random offsets per image, or the centre."""
        n, h, w, _ = img.shape
        ch, cw = self.crop_hw
        if random:
            oy = torch.randint(0, h - ch + 1, (n,), device=img.device)
            ox = torch.randint(0, w - cw + 1, (n,), device=img.device)
        else:
            oy = torch.full((n,), (h - ch) // 2, device=img.device)
            ox = torch.full((n,), (w - cw) // 2, device=img.device)
        rows = oy[:, None] + torch.arange(ch, device=img.device)
        cols = ox[:, None] + torch.arange(cw, device=img.device)
        return img[torch.arange(n, device=img.device)[:, None, None], rows[:, :, None], cols[:, None, :]]

    def forward(self, img: torch.Tensor, augment: bool) -> torch.Tensor:
        x = self.crop(img, augment).permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
        return self.head(self.pool(self.backbone(x)))


class ObsEncoder(nn.Module):
    """``{key: [B, To, *shape]}`` (low-dim keys already normalized) -> ``[B, To * out_per_step]``.

    Per step the features are ``[low-dim keys flattened in obs_keys order, camera features,
    extra]``; ``extra [B, To, extra_per_step]`` are features the policy derived itself.
    """

    def __init__(self, obs_keys: tuple[str, ...], obs_shapes: dict[str, tuple[int, ...]],
                 image_feature_dim: int = 64, image_channels: tuple[int, ...] = (32, 64, 128),
                 crop_ratio: float = 0.9, extra_per_step: int = 0):
        super().__init__()
        self.low_dim_keys = tuple(k for k in obs_keys if not is_image_key(k))
        self.image_keys = tuple(k for k in obs_keys if is_image_key(k))
        self.obs_shapes = obs_shapes
        self.cameras = nn.ModuleDict({
            k.replace("/", "__"): ImageEncoder(obs_shapes[k][0], obs_shapes[k][1], image_feature_dim,
                                               image_channels, crop_ratio=crop_ratio)
            for k in self.image_keys})
        self.extra_per_step = extra_per_step
        self.out_per_step = (sum(math.prod(obs_shapes[k]) for k in self.low_dim_keys)
                             + image_feature_dim * len(self.image_keys) + extra_per_step)

    def forward(self, obs: dict[str, torch.Tensor], augment: bool,
                extra: torch.Tensor | None = None) -> torch.Tensor:
        b, to = obs[(self.low_dim_keys + self.image_keys)[0]].shape[:2]
        feats = [obs[k].reshape(b, to, -1).float() for k in self.low_dim_keys]
        for k in self.image_keys:
            img = obs[k]
            f = self.cameras[k.replace("/", "__")](img.reshape(b * to, *img.shape[2:]), augment)
            feats.append(f.reshape(b, to, -1))
        if self.extra_per_step:
            feats.append(extra.reshape(b, to, -1).float())
        return torch.cat(feats, dim=-1).reshape(b, -1)


def relative_positions(ee_pose: torch.Tensor, object_poses: torch.Tensor, goal_pose: torch.Tensor,
                       scale: float) -> torch.Tensor:
    """``ee_pose [B, To, 7]``, ``object_poses [B, To, N, 7]``, ``goal_pose [B, To, 7]`` (base
    frame) -> ``[B, To, 6N + 3]``: object - ee (N x 3), goal - ee (3), goal - object (N x 3),
    divided by ``scale``."""
    ee, goal = ee_pose[..., None, :3], goal_pose[..., None, :3]
    obj = object_poses[..., :3]
    parts = [obj - ee, goal - ee, goal - obj]
    return torch.cat([x.flatten(-2) for x in parts], dim=-1) / scale


def relative_positions_dim(obs_shapes: dict[str, tuple[int, ...]]) -> int:
    """Width of ``relative_positions``: ``6N + 3`` for ``N`` objects."""
    return 6 * obs_shapes["object_poses"][0] + 3


def relative_obs_dim(config) -> int:
    """Per-step width of the features ``relative_positions`` adds (0 without ``relative_obs``)."""
    return relative_positions_dim(config.obs_shapes) if config.relative_obs else 0


def encode_observations(encoder: ObsEncoder, normalizer, config, obs: dict[str, torch.Tensor],
                        augment: bool) -> torch.Tensor:
    """``{key: [B, >=To, *shape]}`` raw observations -> the global condition ``[B, To * features]``.

    Shared by the policy families: low-dim keys are normalized, images go through their CNN,
    and with ``config.relative_obs`` the hand-relative positions are appended (computed from
    the raw, unnormalized poses, divided by ``RELATIVE_OBS_SCALE``).
    """
    to = config.n_obs_steps
    normed, raw = {}, {}
    for k in config.obs_keys:
        x = obs[k][:, :to]
        if not is_image_key(k):
            raw[k] = x.reshape(*x.shape[:2], *config.obs_shapes[k]).float()
            x = normalizer.normalize(k, raw[k])
        normed[k] = x
    extra = None
    if config.relative_obs:
        extra = relative_positions(raw["ee_pose"], raw["object_poses"], raw["goal_pose"], RELATIVE_OBS_SCALE)
    return encoder(normed, augment, extra)

"""Terrains as one heightfield of square tiles (legged_gym's layout): rows get harder, columns
cycle through the kinds a terrain mixes.

    terrain = Terrain.build(TerrainConfig(kind="stairs"), seed=0)
    terrain.heights            # [rows*n, cols*n] metres, n = tile_size / resolution
    terrain.height_at(x, y)    # [..] metres, nearest sample
    terrain.origins            # [rows, cols, 3] spawn points (tile centres, on the surface)

``flat`` is MuJoCo's infinite plane and no heightfield. Heights are generated with numpy from
the seed only, so two builds with one seed are identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rosmind.errors import SpecError, UnknownNameError

TERRAIN_KINDS = ("flat", "rough", "slopes", "stairs", "mixed")
# What "mixed" cycles through, one kind per column.
MIXED_TILES = ("rough", "slope_up", "slope_down", "stairs_up", "stairs_down")


@dataclass
class TerrainConfig:
    """A terrain; lengths in metres, ``max_slope_deg`` in degrees."""

    kind: str = "flat"
    rows: int = 4  # difficulty levels, easiest first
    cols: int = 5
    tile_size: float = 4.0
    resolution: float = 0.05  # horizontal spacing of the height samples
    rough_height: float = 0.05  # noise amplitude at the hardest row (+-)
    max_slope_deg: float = 30.0
    max_step_height: float = 0.10
    step_width: float = 0.30
    platform: float = 1.0  # flat square at each tile's centre, where robots spawn

    def __post_init__(self):
        if self.kind not in TERRAIN_KINDS:
            raise UnknownNameError(f"unknown terrain {self.kind!r}; valid terrains: {', '.join(TERRAIN_KINDS)}")
        for name in ("tile_size", "resolution", "step_width", "platform"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise SpecError(f"TerrainConfig.{name}: must be positive, got {v!r}")
        if self.rows < 1 or self.cols < 1:
            raise SpecError(f"TerrainConfig: rows and cols must be >= 1, got {self.rows} x {self.cols}")
        if not 0 <= self.max_slope_deg < 60:
            raise SpecError(f"TerrainConfig.max_slope_deg: in [0, 60), got {self.max_slope_deg}")
        if self.platform >= self.tile_size:
            raise SpecError(f"TerrainConfig.platform {self.platform} must be smaller than tile_size {self.tile_size}")


def _tile_kind(kind: str, col: int) -> str:
    if kind == "mixed":
        return MIXED_TILES[col % len(MIXED_TILES)]
    return {"rough": "rough", "slopes": ("slope_up", "slope_down")[col % 2],
            "stairs": ("stairs_up", "stairs_down")[col % 2]}[kind]


def _tile(kind: str, difficulty: float, cfg: TerrainConfig, rng: np.random.Generator) -> np.ndarray:
    """Heights [n, n] of one tile at ``difficulty`` in [0, 1] (0 at the tile's centre platform)."""
    n = int(round(cfg.tile_size / cfg.resolution))
    c = (np.arange(n) + 0.5) * cfg.resolution - cfg.tile_size / 2
    # Distance from the centre platform's edge, in the max norm (square pyramids).
    ring = np.maximum(np.maximum(np.abs(c)[:, None], np.abs(c)[None, :]) - cfg.platform / 2, 0.0)
    if kind == "rough":
        # Noise on a 0.1 m grid, not per sample: a sample-wide spike is not what a robot meets.
        coarse = max(1, int(round(0.1 / cfg.resolution)))
        m = -(-n // coarse)
        amp = cfg.rough_height * (0.3 + 0.7 * difficulty)
        noise = rng.uniform(-amp, amp, (m, m)).repeat(coarse, 0).repeat(coarse, 1)[:n, :n]
        return noise
    sign = -1.0 if kind.endswith("_down") else 1.0
    if kind.startswith("slope"):
        slope = math.tan(math.radians(cfg.max_slope_deg * difficulty))
        return -sign * slope * ring  # up: the centre is the top, robots walk down the sides and back
    step = cfg.max_step_height * (0.25 + 0.75 * difficulty)
    return -sign * step * np.ceil(ring / cfg.step_width)


@dataclass
class Terrain:
    config: TerrainConfig
    heights: np.ndarray | None  # [H, W] metres; None for the flat plane
    origins: np.ndarray  # [rows, cols, 3]

    @classmethod
    def build(cls, config: TerrainConfig, seed: int = 0) -> Terrain:
        cfg = config
        rows, cols, size = cfg.rows, cfg.cols, cfg.tile_size
        centres = np.zeros((rows, cols, 3))
        for r in range(rows):
            for col in range(cols):
                centres[r, col, :2] = ((col + 0.5) * size - cols * size / 2, (r + 0.5) * size - rows * size / 2)
        if cfg.kind == "flat":
            return cls(cfg, None, centres)
        rng = np.random.default_rng(seed)
        n = int(round(size / cfg.resolution))
        h = np.zeros((rows * n, cols * n))
        for r in range(rows):
            difficulty = r / max(1, rows - 1)
            for col in range(cols):
                tile = _tile(_tile_kind(cfg.kind, col), difficulty, cfg, rng)
                h[r * n:(r + 1) * n, col * n:(col + 1) * n] = tile
        terrain = cls(cfg, h, centres)
        centres[..., 2] = terrain.height_at(centres[..., 0], centres[..., 1])
        return terrain

    @property
    def extent(self) -> tuple[float, float]:
        """Half sizes (x, y) of the tiled area."""
        c = self.config
        return c.cols * c.tile_size / 2, c.rows * c.tile_size / 2

    def height_at(self, x, y) -> np.ndarray:
        """Ground height (m) under world ``x``, ``y`` (any matching shapes); ``floor`` off the tiles."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if self.heights is None:
            return np.zeros(np.broadcast(x, y).shape)
        ex, ey = self.extent
        res = self.config.resolution
        j = np.floor((x + ex) / res).astype(np.int64)
        i = np.floor((y + ey) / res).astype(np.int64)
        inside = (i >= 0) & (i < self.heights.shape[0]) & (j >= 0) & (j < self.heights.shape[1])
        return np.where(inside, self.heights[np.clip(i, 0, self.heights.shape[0] - 1),
                                             np.clip(j, 0, self.heights.shape[1] - 1)], self.floor)

    @property
    def floor(self) -> float:
        """Height of the plane around the tiles (the lowest sample)."""
        return 0.0 if self.heights is None else float(min(0.0, self.heights.min()))

"""Zarr replay buffers (the diffusion_policy layout) and the windowed training dataset.

On disk (zarr format 2, so diffusion_policy-era tools read it)::

    <path>.zarr/
      data/<key>             [N, *shape]  one array per key; N = total steps of all episodes
                                          images: uint8 [N, H, W, 3], one chunk per frame
      meta/episode_ends      [E] int64    cumulative: episode i is data[ends[i-1]:ends[i]]
      meta/episode_<field>   [E]          per-episode metadata (seed, success, ...)

Keys written by ``rosmind collect`` for pick_place: ``joint_pos [N,8]``, ``ee_pose [N,7]``,
``object_poses [N,1,7]``, ``goal_pose [N,7]``, ``action [N,8]`` (absolute joint targets) and
optionally ``camera/<name>/rgb [N,H,W,3] uint8``.

``SequenceDataset`` cuts windows of ``horizon`` steps with diffusion_policy's SequenceSampler
semantics: a window may start up to ``n_obs_steps-1`` steps before an episode and end up to
``n_action_steps-1`` steps after it; the missing steps repeat the edge frame.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from rosmind.errors import DatasetError

IMAGE_CHUNK_MIN_NDIM = 4  # [N, H, W, C]: chunked one frame per chunk


def is_image_key(key: str) -> bool:
    return key.startswith("camera/") or key.endswith("/rgb")


class ReplayBuffer:
    """Episodes stored as concatenated per-key arrays plus cumulative ``episode_ends``.

    Use ``ReplayBuffer.open(path, mode)``: ``"r"`` read-only, ``"a"`` append (creates the
    store if missing), ``"w"`` overwrite.
    """

    def __init__(self, root, path: str):
        self.root = root
        self.path = path

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> ReplayBuffer:
        import zarr

        path = str(path)
        if mode not in ("r", "a", "w"):
            raise ValueError(f"mode must be r, a or w, got {mode!r}")
        if mode == "r" and not Path(path).exists():
            raise DatasetError(f"{path}: dataset does not exist")
        try:
            root = zarr.open_group(path, mode=mode, zarr_format=2)
        except Exception as e:  # zarr raises several types for unreadable stores
            raise DatasetError(f"{path}: not a readable zarr (format 2) group: {e}") from None
        if mode != "r":
            root.require_group("data")
            meta = root.require_group("meta")
            if "episode_ends" not in meta:
                meta.create_array("episode_ends", shape=(0,), dtype="int64", chunks=(4096,))
        buf = cls(root, path)
        buf._check_layout(repair=mode == "a")
        return buf

    def _check_layout(self, repair: bool = False) -> None:
        for grp in ("data", "meta"):
            if grp not in self.root:
                raise DatasetError(f"{self.path}: missing group {grp!r} (expected the diffusion_policy "
                                   f"layout data/<key>, meta/episode_ends)")
        if "episode_ends" not in self.root["meta"]:
            raise DatasetError(f"{self.path}: missing array 'meta/episode_ends'")
        try:
            ends = self.episode_ends
        except Exception as e:
            raise DatasetError(f"{self.path}: 'meta/episode_ends' is unreadable: {e}") from None
        if ends.ndim != 1 or (len(ends) and (np.any(np.diff(ends) <= 0) or ends[0] <= 0)):
            raise DatasetError(f"{self.path}: 'meta/episode_ends' must be strictly increasing positive "
                               f"cumulative step counts, got {ends[:10].tolist()}")
        n = int(ends[-1]) if len(ends) else 0
        for key in self.keys():
            arr = self.root["data"][key]
            if arr.shape[0] > n and repair:
                arr.resize((n, *arr.shape[1:]))  # drop the tail of an interrupted add_episode
            elif arr.shape[0] != n:
                hint = " (an interrupted write? opening with mode 'a' drops the partial episode)" \
                    if arr.shape[0] > n else ""
                raise DatasetError(f"{self.path}: key 'data/{key}' has {arr.shape[0]} steps but "
                                   f"meta/episode_ends says {n}{hint}")

        for name, arr in list(self.root["meta"].arrays()):
            if name.startswith("episode_") and name != "episode_ends" and arr.shape[0] != len(ends):
                if arr.shape[0] > len(ends) and repair:
                    arr.resize((len(ends),))
                else:
                    raise DatasetError(f"{self.path}: 'meta/{name}' has {arr.shape[0]} entries for "
                                       f"{len(ends)} episodes")

    @property
    def episode_ends(self) -> np.ndarray:
        return np.asarray(self.root["meta"]["episode_ends"][:], dtype=np.int64)

    @property
    def n_episodes(self) -> int:
        return int(self.root["meta"]["episode_ends"].shape[0])

    @property
    def n_steps(self) -> int:
        ends = self.episode_ends
        return int(ends[-1]) if len(ends) else 0

    def keys(self) -> list[str]:
        """Data keys, with nested groups joined by ``/`` (``camera/wrist/rgb``)."""
        out: list[str] = []

        def walk(group, prefix: str) -> None:
            for name, _ in sorted(group.arrays()):
                out.append(prefix + name)
            for name, sub in sorted(group.groups()):
                walk(sub, f"{prefix}{name}/")

        walk(self.root["data"], "")
        return out

    def meta_fields(self) -> list[str]:
        return sorted(n[len("episode_"):] for n, _ in self.root["meta"].arrays()
                      if n.startswith("episode_") and n != "episode_ends")

    def array(self, key: str):
        """The zarr array of one data key; DatasetError naming path and key if absent."""
        if key not in self.keys():
            raise DatasetError(f"{self.path}: missing key 'data/{key}'; it has {self.keys()}")
        return self.root["data"][key]

    def episode_slice(self, i: int) -> slice:
        n = self.n_episodes
        if not -n <= i < n:
            raise IndexError(f"{self.path}: episode {i} out of range ({n} episodes)")
        i %= n
        ends = self.episode_ends
        return slice(int(ends[i - 1]) if i > 0 else 0, int(ends[i]))

    def get_episode(self, i: int, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        s = self.episode_slice(i)
        return {k: np.asarray(self.array(k)[s]) for k in (keys or self.keys())}

    def episode_meta(self, field: str) -> np.ndarray:
        name = f"episode_{field}"
        if name not in self.root["meta"]:
            raise DatasetError(f"{self.path}: missing key 'meta/{name}'; it has {self.meta_fields()}")
        return np.asarray(self.root["meta"][name][:])

    def add_episode(self, data: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> None:
        """Append one episode: ``data[key]`` is ``[T, *shape]`` with the same T for every key;
        ``meta`` scalars (seed, success, ...) go to ``meta/episode_<field>``. The first episode
        fixes the key set; later episodes must have the same keys and per-step shapes."""
        if not data:
            raise DatasetError(f"{self.path}: add_episode got no data")
        lengths = {k: len(v) for k, v in data.items()}
        t = next(iter(lengths.values()))
        if t == 0 or any(n != t for n in lengths.values()):
            raise DatasetError(f"{self.path}: episode arrays must share a nonzero length, got {lengths}")
        existing = self.keys()
        if existing and set(existing) != set(data):
            raise DatasetError(f"{self.path}: episode keys {sorted(data)} differ from the buffer's {existing}")
        meta = dict(meta or {})
        old_fields = self.meta_fields()
        if self.n_episodes and set(old_fields) != set(meta):
            raise DatasetError(f"{self.path}: episode meta fields {sorted(meta)} differ from {old_fields}")
        # Validate everything before writing anything: a refused episode leaves no trace.
        data_group = self.root["data"]
        values: dict[str, np.ndarray] = {}
        for key, value in data.items():
            value = np.asarray(value)
            if key in existing:
                arr = self.array(key)
                if arr.shape[1:] != value.shape[1:]:
                    raise DatasetError(f"{self.path}: key 'data/{key}': episode has per-step shape "
                                       f"{value.shape[1:]}, buffer has {arr.shape[1:]}")
                if value.dtype != arr.dtype:
                    if not np.can_cast(value.dtype, arr.dtype, "same_kind"):
                        raise DatasetError(f"{self.path}: key 'data/{key}': episode dtype {value.dtype} "
                                           f"does not fit the buffer's {arr.dtype}")
                    value = value.astype(arr.dtype)
            values[key] = value
        for key, value in values.items():
            arr = data_group[key] if key in existing else self._create(data_group, key, value)
            arr.append(value, axis=0)
        meta_group = self.root["meta"]
        for field, v in meta.items():
            name = f"episode_{field}"
            v = np.asarray(v)
            if name not in meta_group:
                meta_group.create_array(name, shape=(0,), dtype=v.dtype, chunks=(4096,))
            meta_group[name].append(v.reshape(1), axis=0)
        meta_group["episode_ends"].append(np.array([self.n_steps + t], dtype=np.int64), axis=0)

    @staticmethod
    def _create(group, key: str, value: np.ndarray):
        import numcodecs

        if (value.ndim >= IMAGE_CHUNK_MIN_NDIM and value.dtype == np.uint8) or (
                is_image_key(key) and value.ndim >= 3):  # frames: also [N, H, W] depth
            chunks = (1, *value.shape[1:])
            comp = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.NOSHUFFLE)
        else:
            per = int(np.prod(value.shape[1:], dtype=np.int64)) or 1
            chunks = (max(1, (1 << 16) // per), *value.shape[1:])
            comp = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
        *parents, name = key.split("/")
        for p in parents:
            group = group.require_group(p)
        return group.create_array(name, shape=(0, *value.shape[1:]), dtype=value.dtype,
                                  chunks=chunks, compressors=comp)

    def content_hash(self) -> str:
        """sha256 over the layout, episode_ends and all non-image arrays (images: shape only)."""
        h = hashlib.sha256()
        h.update(self.episode_ends.tobytes())
        for key in self.keys():
            arr = self.root["data"][key]
            h.update(f"{key}|{arr.shape}|{arr.dtype}".encode())
            if not is_image_key(key):
                h.update(np.ascontiguousarray(arr[:]).tobytes())
        return h.hexdigest()[:16]


def tactile_pca(a: np.ndarray) -> dict[str, np.ndarray]:
    """PCA of taxel readings ``[N, *shape]`` (RDP reduces a tactile pad this way):
    ``pca_mean [D]``, ``pca_components [D, D]`` (rows by decreasing variance), and the range of
    each component's projection, ``pca_min``/``pca_max`` ``[D]``."""
    x = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    proj = (x - mean) @ vt.T
    return {"pca_mean": mean, "pca_components": vt, "pca_min": proj.min(axis=0), "pca_max": proj.max(axis=0)}


def val_mask(n_episodes: int, val_ratio: float, seed: int) -> np.ndarray:
    """Episode-level split: a seeded random choice of ``round(n*val_ratio)`` validation
    episodes (at least one when ``val_ratio > 0`` and there are two or more episodes)."""
    mask = np.zeros(n_episodes, dtype=bool)
    n_val = min(max(1 if val_ratio > 0 else 0, round(n_episodes * val_ratio)), n_episodes - 1)
    if n_val > 0:
        mask[np.random.default_rng(seed).choice(n_episodes, size=n_val, replace=False)] = True
    return mask


def sequence_indices(episode_ends: np.ndarray, horizon: int, pad_before: int, pad_after: int,
                     episode_mask: np.ndarray) -> np.ndarray:
    """Rows ``(buffer_start, buffer_end, sample_start, sample_end)``: a window of ``horizon``
    steps takes ``buffer[buffer_start:buffer_end]`` into ``window[sample_start:sample_end]`` and
    fills the rest by repeating the edge frames."""
    rows = []
    start = 0
    for i, end in enumerate(episode_ends):
        length = int(end) - start
        if episode_mask[i]:
            for idx in range(-pad_before, length - horizon + pad_after + 1):
                b0 = max(idx, 0) + start
                b1 = min(idx + horizon, length) + start
                s0 = b0 - (idx + start)
                s1 = horizon - ((idx + horizon + start) - b1)
                rows.append((b0, b1, s0, s1))
        start = int(end)
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


class SequenceDataset:
    """Windows of ``horizon`` steps for training (a ``torch.utils.data.Dataset``).

    Item: ``{obs_key: [n_obs_steps, *shape], "action": [horizon, Da]}`` as torch tensors, plus
    ``future/<key>: [horizon, *shape]`` for each of ``future_keys`` (a per-step input over the
    whole window, e.g. RDP's force stream)
    (images stay uint8 ``[To, H, W, 3]``; everything else float32). Low-dimensional keys are
    read into memory once; images too while all of them together fit in ``image_cache_bytes``
    (one decompression per frame instead of one per sample: 600 demos of two cameras at
    128x96 + 96x96 are ~6 GB), else they are read from zarr per item.
    """

    def __init__(self, path: str | Path, obs_keys: tuple[str, ...], horizon: int, n_obs_steps: int,
                 n_action_steps: int, action_key: str = "action", val_ratio: float = 0.0,
                 split_seed: int = 42, split: str = "train", image_cache_bytes: int = 8 << 30,
                 future_keys: tuple[str, ...] = ()):
        self.buffer = ReplayBuffer.open(path, "r")
        self.path = str(path)
        if self.buffer.n_episodes == 0:
            raise DatasetError(f"{self.path}: dataset has no episodes")
        self.obs_keys = tuple(obs_keys)
        self.future_keys = tuple(future_keys)
        self.action_key = action_key
        self.horizon, self.n_obs_steps = horizon, n_obs_steps
        self.arrays: dict[str, Any] = {}
        image_bytes = sum(int(np.prod(self.buffer.array(k).shape)) * self.buffer.array(k).dtype.itemsize
                          for k in self.obs_keys if is_image_key(k))
        cache = image_bytes <= image_cache_bytes
        for key in dict.fromkeys((*self.obs_keys, *self.future_keys, action_key)):
            arr = self.buffer.array(key)
            try:
                if is_image_key(key):
                    self.arrays[key] = np.asarray(arr[:]) if cache else arr
                else:
                    self.arrays[key] = np.asarray(arr[:], dtype=np.float32)
            except Exception as e:  # codec/chunk errors from a damaged store
                raise DatasetError(f"{self.path}: key 'data/{key}' is unreadable: {e}") from None
            if not is_image_key(key) and not np.all(np.isfinite(self.arrays[key])):
                raise DatasetError(f"{self.path}: key 'data/{key}' contains NaN or inf")
        mask = val_mask(self.buffer.n_episodes, val_ratio, split_seed)
        if split == "train":
            mask = ~mask
        elif split != "val":
            raise ValueError(f"split must be train or val, got {split!r}")
        self.episode_mask = mask
        self.indices = sequence_indices(self.buffer.episode_ends, horizon, n_obs_steps - 1,
                                        n_action_steps - 1, mask)
        if split == "train" and len(self.indices) == 0:
            raise DatasetError(f"{self.path}: no window of horizon {horizon} fits in the training "
                               f"episodes (lengths {np.diff(self.buffer.episode_ends, prepend=0).tolist()})")

    def __len__(self) -> int:
        return len(self.indices)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-step shape of each key (the policy config's ``obs_shapes`` / action dim)."""
        return {k: tuple(int(s) for s in a.shape[1:]) for k, a in self.arrays.items()}

    def stats(self, quantile: float = 0.0) -> dict[str, dict[str, np.ndarray]]:
        """Per-element ``min``/``max`` over all steps of every low-dimensional key (and, for
        ``quantile > 0``, ``q_min``/``q_max``: its ``quantile`` and ``1 - quantile`` quantiles); with
        ``joint_pos`` among the keys also ``action_relative`` ``[horizon, Da]``: the range of
        each chunk row minus the window's newest joint_pos, over every training window."""
        out = {k: {"min": a.min(axis=0), "max": a.max(axis=0)}
               for k, a in self.arrays.items() if not is_image_key(k)}
        if quantile > 0:
            for k in out:
                a = np.asarray(self.arrays[k])
                out[k].update(q_min=np.quantile(a, quantile, axis=0), q_max=np.quantile(a, 1 - quantile, axis=0),
                              quantile=np.float64(quantile))
        for k, a in self.arrays.items():
            if k.startswith("tactile/"):
                out[k].update(tactile_pca(a))
        q = self.arrays.get("joint_pos")
        act = self.arrays[self.action_key]
        if q is not None and q.shape[1:] == act.shape[1:] and len(self.indices):
            rel = np.stack([self._window(self.action_key, *(int(x) for x in ix), self.horizon)
                            - self._window("joint_pos", *(int(x) for x in ix), self.n_obs_steps)[-1]
                            for ix in self.indices])
            out["action_relative"] = {"min": rel.min(axis=0), "max": rel.max(axis=0)}
        return out

    def _window(self, key: str, b0: int, b1: int, s0: int, s1: int, length: int) -> np.ndarray:
        # Only the first ``length`` rows of the window are read (observations need n_obs_steps).
        # s0 <= n_obs_steps-1 < length, so at least one real frame is always inside.
        take = min(s1, length) - s0
        data = np.asarray(self.arrays[key][b0:b0 + take])
        if s0 == 0 and take == length:
            return data
        out = np.empty((length, *data.shape[1:]), dtype=data.dtype)
        out[s0:s0 + take] = data
        out[:s0] = data[0]
        out[s0 + take:] = data[-1]
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        b0, b1, s0, s1 = (int(x) for x in self.indices[i])
        item = {}
        for key in self.obs_keys:
            item[key] = torch.from_numpy(self._window(key, b0, b1, s0, s1, self.n_obs_steps))
        item[self.action_key] = torch.from_numpy(self._window(self.action_key, b0, b1, s0, s1, self.horizon))
        for key in self.future_keys:  # a per-step input over the whole window (RDP's force stream)
            item[f"future/{key}"] = torch.from_numpy(self._window(key, b0, b1, s0, s1, self.horizon))
        return item

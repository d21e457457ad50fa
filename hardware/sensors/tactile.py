"""Camera-based tactile sensors (DIGIT, GelSight Mini and other marker gels): marker offsets
from the camera image, in the layout the sim's taxel pad publishes on ``tactile/<name>``
(a ``[rows, cols, 3]`` float image: normal, shear x, shear y), which RDP reduces by PCA.

    markers = MarkerTracker(rows=7, cols=9)
    markers.reference(frame0)            # the gel untouched: where every marker rests
    out = markers(frame)                 # [7, 9, 3]: (darkening, dx, dy) per marker, pixels

- Markers are the gel's dark dots: Otsu threshold of the inverted grey image, connected
  components in an area band, centroids. The reference's ``rows x cols`` markers are sorted into
  the grid (by y into rows, then by x).
- Each frame, every reference marker takes the nearest detected centroid within
  ``max_shift_px`` (none: offset 0 and the marker counts as lost): ``dx, dy`` is its shear in
  pixels, the first channel the mean intensity drop in a disc around it (the gel presses
  against the light: a normal-force proxy).

RDP's paper uses marker offsets the same way (2-D offsets per marker, then PCA).
"""

from __future__ import annotations

import numpy as np

from rosmind.errors import HardwareError


def detect_markers(gray: np.ndarray, min_area: float = 4.0, max_area: float = 400.0) -> np.ndarray:
    """Centroids ``[N, 2]`` (x, y, pixels) of the dark blobs of a uint8 grey image."""
    import cv2

    inv = 255 - np.ascontiguousarray(gray, dtype=np.uint8)
    _, mask = cv2.threshold(inv, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    n, _labels, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = [(stats[i, cv2.CC_STAT_AREA] >= min_area) and (stats[i, cv2.CC_STAT_AREA] <= max_area) for i in range(n)]
    keep[0] = False  # background
    return cents[np.array(keep, dtype=bool)]


def _dark(gray: np.ndarray) -> np.ndarray:
    """Marker pixels (Otsu on the inverted image), dilated by a pixel."""
    import cv2

    _, mask = cv2.threshold(255 - np.ascontiguousarray(gray, dtype=np.uint8), 0, 255,
                            cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0


def to_gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


class MarkerTracker:
    def __init__(self, rows: int, cols: int, max_shift_px: float = 8.0, disc_px: int = 4):
        self.rows, self.cols, self.max_shift, self.disc = rows, cols, max_shift_px, disc_px
        self.ref: np.ndarray | None = None  # [rows, cols, 2]
        self.ref_gray: np.ndarray | None = None
        self.lost = 0

    def reference(self, frame: np.ndarray) -> None:
        gray = to_gray(frame)
        c = detect_markers(gray)
        n = self.rows * self.cols
        if len(c) != n:
            raise HardwareError(f"tactile: the reference frame shows {len(c)} markers, expected {self.rows} x "
                                f"{self.cols} = {n}: check the gel, the lighting and rows/cols")
        c = c[np.argsort(c[:, 1])].reshape(self.rows, self.cols, 2)
        self.ref = np.take_along_axis(c, np.argsort(c[..., 0], axis=1)[..., None], axis=1)
        self.ref_gray = gray.astype(np.float32)
        self.ref_dark = _dark(gray)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if self.ref is None:
            raise HardwareError("tactile: no reference frame yet (call reference() with the gel untouched)")
        gray = to_gray(frame)
        found = detect_markers(gray)
        ref = self.ref.reshape(-1, 2)
        out = np.zeros((len(ref), 3), dtype=np.float32)
        self.lost = 0
        if len(found):
            d = np.linalg.norm(ref[:, None, :] - found[None, :, :], axis=-1)
            j = d.argmin(axis=1)
            ok = d[np.arange(len(ref)), j] <= self.max_shift
            out[ok, 1:] = (found[j[ok]] - ref[ok]).astype(np.float32)
            self.lost = int((~ok).sum())
        else:
            self.lost = len(ref)
        # Normal proxy: how much darker the gel got around each marker, markers themselves
        # (in either frame) left out.
        diff = self.ref_gray - gray.astype(np.float32)
        diff[_dark(gray) | self.ref_dark] = np.nan
        h, w = gray.shape
        r = self.disc
        for k, (x, y) in enumerate(ref):
            x0, y0 = int(round(x)), int(round(y))
            patch = diff[max(0, y0 - r):min(h, y0 + r + 1), max(0, x0 - r):min(w, x0 + r + 1)]
            out[k, 0] = float(np.nanmean(patch)) if np.isfinite(patch).any() else 0.0
        return out.reshape(self.rows, self.cols, 3)

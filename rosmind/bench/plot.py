"""A line chart as a PNG, drawn with Pillow (already installed with tensorboard): benchmarks
write learning curves without a plotting library."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

W, H, LEFT, RIGHT, TOP, BOTTOM = 720, 420, 70, 20, 40, 55
COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    step = (hi - lo) / n if hi > lo else 1.0
    return [lo + i * step for i in range(n + 1)]


def line_chart(path: Path, series: dict[str, tuple[Sequence[float], Sequence[float]]], title: str,
               xlabel: str, ylabel: str, ylim: tuple[float, float] | None = None) -> Path:
    """``series[name] = (xs, ys)``, one line each, on shared axes; written to ``path`` (PNG)."""
    from PIL import Image, ImageDraw

    pts = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys, strict=True)]
    if not pts:
        raise ValueError(f"line_chart {path}: no points to draw")
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = ylim if ylim is not None else (min(p[1] for p in pts), max(p[1] for p in pts))
    x1, y1 = (x1 if x1 > x0 else x0 + 1.0), (y1 if y1 > y0 else y0 + 1.0)

    def px(x: float, y: float) -> tuple[float, float]:
        return (LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT),
                H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM))

    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    d.rectangle([LEFT, TOP, W - RIGHT, H - BOTTOM], outline="black")
    for x in _ticks(x0, x1):
        u, _ = px(x, y0)
        d.line([u, H - BOTTOM, u, H - BOTTOM + 4], fill="black")
        d.text((u - 18, H - BOTTOM + 8), f"{x:.3g}", fill="black")
    for y in _ticks(y0, y1):
        _, v = px(x0, y)
        d.line([LEFT - 4, v, W - RIGHT, v], fill=(225, 225, 225))
        d.text((8, v - 6), f"{y:.3g}", fill="black")
    d.text((W // 2 - 3 * len(xlabel), H - 22), xlabel, fill="black")
    d.text((8, 12), ylabel, fill="black")
    d.text((W // 2 - 3 * len(title), 12), title, fill="black")
    for i, (name, (xs, ys)) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        line = [px(x, y) for x, y in zip(xs, ys, strict=True)]
        if len(line) > 1:
            d.line(line, fill=color, width=2)
        for u, v in line:
            d.ellipse([u - 2, v - 2, u + 2, v + 2], fill=color)
        d.text((W - RIGHT - 200, TOP + 8 + 14 * i), f"-- {name}", fill=color)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")
    return path

"""PNG files of :class:`calnas.plots.FigureSpec` figures, drawn with Pillow.

Why not matplotlib here: a 500-evaluation table search takes well under a second, and importing
matplotlib and laying out two figures cost about as much again. These figures need only points,
lines, ticks and text, which Pillow (already a matplotlib dependency) draws in a few tens of
milliseconds. The look follows matplotlib's defaults (DejaVu Sans, grey grid, the same colours
and marker sizes); the Python API's ``SearchResult.plot()`` still returns a matplotlib Figure of
the same spec.

Drawn at twice the size and downsampled, which smooths markers and lines.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from calnas.plots import BAR_WIDTH, DPI, STYLES, FigureSpec, Panel

SUPERSAMPLE = 2
_PT = DPI / 72  # pixels per point at the output resolution
MARGINS = {"left": 78, "right": 16, "top": 14, "bottom": 52}  # around each panel's axes, output pixels
TITLE_BAND = 30
GRID = (235, 235, 235)
AXIS = (40, 40, 40)
TEXT = (20, 20, 20)


def _font_file() -> str | None:
    """matplotlib's DejaVu Sans, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if candidate.is_file():
            return str(candidate)
    return None


@lru_cache(maxsize=None)
def _font(size_pt: float):
    from PIL import ImageFont

    pixels = max(6, round(size_pt * _PT * SUPERSAMPLE))
    path = _font_file()
    return ImageFont.truetype(path, pixels) if path else ImageFont.load_default(size=pixels)


def _rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick positions within [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return [lo] if np.isfinite(lo) else []
    raw = (hi - lo) / target
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    count = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [first + k * step for k in range(count)]


def tick_label(value: float, ticks: list[float]) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(value) or 1.0
    biggest = max(abs(t) for t in ticks) if ticks else abs(value)
    if biggest >= 1e6 or (biggest and step < 1e-4):
        return f"{value:.3g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if round(step * 10 ** decimals, 6) % 1:  # 2.5 x 10^k needs one more digit
        decimals += 1
    text = f"{value:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text


def _limits(values: list[np.ndarray]) -> tuple[float, float]:
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
    if not finite.size:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if hi == lo:
        pad = abs(lo) * 0.05 or 0.5
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05  # matplotlib's default margins
    return lo - pad, hi + pad


class _Axes:
    def __init__(self, box, xlim, ylim):
        self.box, self.xlim, self.ylim = box, xlim, ylim

    def px(self, x, y):
        left, top, right, bottom = self.box
        fx = (np.asarray(x, dtype=float) - self.xlim[0]) / (self.xlim[1] - self.xlim[0])
        fy = (np.asarray(y, dtype=float) - self.ylim[0]) / (self.ylim[1] - self.ylim[0])
        return left + fx * (right - left), bottom - fy * (bottom - top)


def _marker(draw, x, y, style, scale):
    radius = math.sqrt(style["size"]) * _PT * scale / 2
    color = _rgb(style["color"])
    if style["marker"] == "x":
        width = max(1, round(scale))
        draw.line([(x - radius, y - radius), (x + radius, y + radius)], fill=color, width=width)
        draw.line([(x - radius, y + radius), (x + radius, y - radius)], fill=color, width=width)
    elif style.get("hollow"):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=color, width=max(1, round(0.9 * _PT * scale)))
    else:
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)


def _text(image, xy, text, font, anchor, rotate=False):
    from PIL import Image, ImageDraw

    if not rotate:
        ImageDraw.Draw(image).text(xy, text, font=font, fill=TEXT, anchor=anchor)
        return
    left, top, right, bottom = font.getbbox(text)
    label = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(label).text((2 - left, 2 - top), text, font=font, fill=255)
    label = label.rotate(90, expand=True)
    x, y = xy  # centre of the rotated label
    corner = (round(x - label.width / 2), round(y - label.height / 2))
    image.paste(Image.new("RGB", label.size, TEXT), corner, label)


def _panel(image, draw, panel: Panel, origin, size):
    s = SUPERSAMPLE
    ox, oy = origin
    width, height = size
    box = (ox + MARGINS["left"] * s, oy + MARGINS["top"] * s, ox + width - MARGINS["right"] * s,
           oy + height - MARGINS["bottom"] * s)
    xs = [np.asarray(series.x, dtype=float) for series in panel.series if series.x is not None]
    ys = [np.atleast_1d(np.asarray(series.y, dtype=float)) for series in panel.series]
    bars = any(series.kind == "bars" for series in panel.series)
    if bars:  # bars stand on 0 and need half a bar's room at either end
        xs += [np.asarray(series.x, dtype=float) + side * BAR_WIDTH / 2 for series in panel.series
               if series.kind == "bars" for side in (-1, 1)]
        ys.append(np.zeros(1))
    if panel.xticks is not None:
        xs.append(np.array([p for p, _ in panel.xticks], dtype=float))
    axes = _Axes(box, _limits(xs), _limits(ys))
    small, label_font = _font(9), _font(9.5)
    left, top, right, bottom = box
    for axis, lim in (("x", axes.xlim), ("y", axes.ylim)):
        ticks = nice_ticks(*lim)
        labels = {}
        if axis == "x" and panel.xticks is not None:
            ticks, labels = [p for p, _ in panel.xticks], dict(panel.xticks)
        for tick in ticks:
            if axis == "x":
                px, _ = axes.px(tick, axes.ylim[0])
                draw.line([(px, top), (px, bottom)], fill=GRID, width=s)
                draw.line([(px, bottom), (px, bottom + 4 * s)], fill=AXIS, width=s)
                _text(image, (px, bottom + 6 * s), labels.get(tick, tick_label(tick, ticks)), small, "mt")
            else:
                _, py = axes.px(axes.xlim[0], tick)
                draw.line([(left, py), (right, py)], fill=GRID, width=s)
                draw.line([(left - 4 * s, py), (left, py)], fill=AXIS, width=s)
                _text(image, (left - 6 * s, py), tick_label(tick, ticks), small, "rm")
    for series in sorted(panel.series, key=lambda item: STYLES[item.style]["zorder"]):
        style = STYLES[series.style]
        color = _rgb(style["color"])
        if series.kind == "points":
            px, py = axes.px(series.x, series.y)
            for x, y in zip(px, py):
                if np.isfinite(x) and np.isfinite(y):
                    _marker(draw, x, y, style, s)
        elif series.kind == "bars":
            for x, y in zip(np.asarray(series.x, dtype=float), np.asarray(series.y, dtype=float)):
                (x0, y0), (x1, y1) = (axes.px(x - BAR_WIDTH / 2, y), axes.px(x + BAR_WIDTH / 2, 0.0))
                draw.rectangle([float(x0), float(y0), float(x1), float(y1)], fill=color)
        elif series.kind == "step":
            px, py = axes.px(series.x, series.y)
            keep = np.isfinite(px) & np.isfinite(py)
            px, py = px[keep], py[keep]
            points = [(px[0], py[0])] if len(px) else []
            for k in range(1, len(px)):
                points += [(px[k], py[k - 1]), (px[k], py[k])]
            if len(points) > 1:
                draw.line(points, fill=color, width=round(1.5 * _PT * s), joint="curve")
        else:
            _, py = axes.px(axes.xlim[0], series.y)
            dash, gap = 4 * _PT * s, 2.5 * _PT * s
            x = left
            while x < right:
                draw.line([(x, py), (min(x + dash, right), py)], fill=color, width=round(_PT * s))
                x += dash + gap
    draw.rectangle(box, outline=AXIS, width=s)
    _text(image, ((left + right) / 2, bottom + 24 * s), panel.xlabel, label_font, "mt")
    _text(image, (ox + 14 * s, (top + bottom) / 2), panel.ylabel, label_font, "mm", rotate=True)
    if panel.legend:
        _legend(image, draw, panel, axes)


def _legend(image, draw, panel: Panel, axes: _Axes):
    s = SUPERSAMPLE
    font = _font(8)
    entries = list(panel.series)
    line_height = 15 * s
    width = 34 * s + max(font.getlength(series.label) for series in entries)
    height = line_height * len(entries) + 8 * s
    left, top, right, bottom = axes.box
    pad = 8 * s
    corners = {"upper right": (right - pad - width, top + pad), "upper left": (left + pad, top + pad),
               "lower left": (left + pad, bottom - pad - height), "lower right": (right - pad - width, bottom - pad - height)}
    if panel.legend == "best":  # the corner covering the fewest points, as matplotlib's "best" tries
        points = [axes.px(series.x, series.y) for series in panel.series if series.kind == "points"]

        def covered(corner):
            x0, y0 = corner
            return sum(int(np.sum((px >= x0) & (px <= x0 + width) & (py >= y0) & (py <= y0 + height))) for px, py in points)

        x0, y0 = min(corners.values(), key=covered)
    else:
        x0, y0 = corners.get(panel.legend, corners["upper right"])
    draw.rounded_rectangle([x0, y0, x0 + width, y0 + height], radius=3 * s, fill=(255, 255, 255), outline=(204, 204, 204), width=s)
    for k, series in enumerate(entries):
        style = STYLES[series.style]
        cy = y0 + 4 * s + line_height * k + line_height / 2
        if series.kind == "points":
            _marker(draw, x0 + 14 * s, cy, style, s)
        elif series.kind == "bars":
            draw.rectangle([x0 + 8 * s, cy - 5 * s, x0 + 22 * s, cy + 5 * s], fill=_rgb(style["color"]))
        else:
            step = 3 * s if style.get("dashed") else 20 * s
            for x in range(int(x0 + 5 * s), int(x0 + 25 * s), step * 2 if style.get("dashed") else step):
                draw.line([(x, cy), (min(x + step, x0 + 25 * s), cy)], fill=_rgb(style["color"]), width=round(1.5 * _PT * s))
        _text(image, (x0 + 30 * s, cy), series.label, font, "lm")


def render(spec: FigureSpec, path) -> Path:
    """Write ``spec`` as a PNG at ``path`` (matplotlib's size for the same spec at calnas.plots.DPI)."""
    from PIL import Image, ImageDraw

    s = SUPERSAMPLE
    rows = -(-len(spec.panels) // spec.cols)
    panel_w, panel_h = (round(inches * DPI) * s for inches in spec.panel_size)
    image = Image.new("RGB", (panel_w * spec.cols, panel_h * rows + TITLE_BAND * s), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    _text(image, (image.width / 2, TITLE_BAND * s / 2 + 2 * s), spec.title, _font(10), "mm")
    for n, panel in enumerate(spec.panels):
        row, col = divmod(n, spec.cols)
        _panel(image, draw, panel, (col * panel_w, TITLE_BAND * s + row * panel_h), (panel_w, panel_h))
    image.reduce(s).save(path, format="PNG", compress_level=1)  # box-averaged: the smoothing
    return Path(path)

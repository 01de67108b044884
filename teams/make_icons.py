"""Draw the Teams app icons: ``color.png`` (192x192, full colour) and ``outline.png`` (32x32, white
on transparent), as the Teams app package asks
(https://learn.microsoft.com/microsoftteams/platform/concepts/build-and-test/apps-package).

Run ``python teams/make_icons.py`` after changing the drawing; the PNGs are committed, so
``chaser teams package`` needs neither this script nor a font. Shapes only (no text), drawn at
8x and scaled down, so the result is the same on every machine.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
ACCENT = (31, 92, 153)  # the manifest's accentColor, #1F5C99
AMBER = (255, 191, 0)
GREEN = (46, 160, 67)
SCALE = 8


def _tick(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], width: float, fill: object) -> None:
    """A tick mark inside ``box`` (left, top, right, bottom)."""
    left, top, right, bottom = box
    points = [(left, top + (bottom - top) * 0.55), (left + (right - left) * 0.38, bottom),
              (right, top)]
    draw.line(points, fill=fill, width=round(width), joint="curve")


def color(size: int = 192) -> Image.Image:
    """A clipboard on the accent colour: two lines ticked (green), one waiting (amber)."""
    big = size * SCALE
    image = Image.new("RGBA", (big, big), ACCENT + (255,))
    draw = ImageDraw.Draw(image)
    u = big / 192  # drawing units: the 192-pixel grid
    draw.rounded_rectangle((44 * u, 34 * u, 148 * u, 166 * u), radius=12 * u, fill=(255, 255, 255, 255))
    draw.rounded_rectangle((74 * u, 24 * u, 118 * u, 46 * u), radius=8 * u, fill=(220, 228, 238, 255))
    for row, mark in enumerate((GREEN, GREEN, AMBER)):
        y = 66 * u + row * 32 * u
        if mark == AMBER:
            draw.ellipse((58 * u, y, 78 * u, y + 20 * u), fill=AMBER + (255,))
        else:
            _tick(draw, (58 * u, y + 2 * u, 78 * u, y + 18 * u), 6 * u, mark + (255,))
        draw.rounded_rectangle((88 * u, y + 6 * u, 134 * u, y + 14 * u), radius=4 * u, fill=(120, 136, 156, 255))
    return image.resize((size, size), Image.Resampling.LANCZOS)


def outline(size: int = 32) -> Image.Image:
    """The same idea as a silhouette: a tick in a rounded square, white, the rest transparent."""
    big = size * SCALE
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    u = big / 32
    draw.rounded_rectangle((4 * u, 4 * u, 28 * u, 28 * u), radius=5 * u, outline=255, width=round(2.5 * u))
    _tick(draw, (9.5 * u, 10 * u, 22.5 * u, 21 * u), 3 * u, 255)
    alpha = mask.resize((size, size), Image.Resampling.LANCZOS)
    image = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    image.putalpha(alpha)  # every pixel white; only its opacity varies
    return image


def main() -> None:
    color().save(HERE / "color.png", optimize=True)
    outline().save(HERE / "outline.png", optimize=True)
    print(f"Wrote {HERE / 'color.png'} and {HERE / 'outline.png'}.")


if __name__ == "__main__":
    main()

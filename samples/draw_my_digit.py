"""Draw samples/my_digit.png: a hand-drawn-looking "2" in dark ink on light paper, slightly slanted (notebook 04's sample).

    python samples/draw_my_digit.py
"""

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parent / "my_digit.png"
W = 200
img = Image.new("L", (W, W), 238)
d = ImageDraw.Draw(img)
# a hand-drawn looking "2": an arc over the top, a diagonal down to the left, a base stroke to the right
pts = []
for t in [i / 40 for i in range(41)]:  # top arc: from the left, over the top, down the right side
    a = math.pi * (1.15 - 1.35 * t)
    pts.append((100 + 42 * math.cos(a), 78 - 38 * math.sin(a)))
x0, y0 = pts[-1]
for t in [i / 20 for i in range(1, 21)]:  # diagonal to the bottom left, slightly curved
    pts.append((x0 + (62 - x0) * t - 6 * math.sin(math.pi * t), y0 + (150 - y0) * t))
for t in [i / 12 for i in range(1, 13)]:  # base stroke, rising a little to the right
    pts.append((62 + 86 * t, 150 - 4 * t + 3 * math.sin(math.pi * t)))
d.line(pts, fill=40, width=15, joint="curve")
for x, y in (pts[0], pts[-1]):
    d.ellipse((x - 7, y - 7, x + 7, y + 7), fill=40)
img = img.rotate(-9, resample=Image.BICUBIC, fillcolor=238)  # a slight clockwise slant
img = img.filter(ImageFilter.GaussianBlur(0.8))
img.save(OUT, optimize=True)

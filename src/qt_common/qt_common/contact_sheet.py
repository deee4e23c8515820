"""Contact sheets: a grid of frames with a caption under each, saved as one PNG.

People would rather look than read: the simulator (one episode per task), the dataset viewer
(an episode with its action bins) and the evaluation report all use this one function.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

CAPTION_LINE_PX = 12


def make_contact_sheet(
    frames: Sequence[np.ndarray],
    captions: Sequence[str] | None = None,
    columns: int = 8,
    scale: int = 1,
    title: str = "",
) -> np.ndarray:
    """Tile HxWx3 uint8 frames (all the same size) into one image with captions below each.

    Captions may hold several lines ("\\n"); ``scale`` enlarges small frames (nearest
    neighbour) so 96 px camera images stay readable.
    """
    from PIL import Image, ImageDraw

    if not frames:
        raise ValueError("frames: expected at least one frame")
    height, width = frames[0].shape[:2]
    for i, frame in enumerate(frames):
        if frame.shape != frames[0].shape or frame.dtype != np.uint8 or frame.ndim != 3:
            raise ValueError(f"frames[{i}]: expected uint8 {frames[0].shape}, got {frame.dtype} {frame.shape}")
    captions = list(captions or [""] * len(frames))
    if len(captions) != len(frames):
        raise ValueError(f"captions: expected {len(frames)}, got {len(captions)}")
    caption_lines = max(c.count("\n") + 1 for c in captions) if any(captions) else 0
    cell_w, cell_h = width * scale, height * scale + caption_lines * CAPTION_LINE_PX + 4
    columns = max(1, min(columns, len(frames)))
    rows = -(-len(frames) // columns)
    title_h = CAPTION_LINE_PX + 6 if title else 0
    sheet = Image.new("RGB", (columns * cell_w + (columns + 1) * 2, title_h + rows * cell_h + 2), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 3), title, fill="black")
    for i, (frame, caption) in enumerate(zip(frames, captions, strict=True)):
        x = 2 + (i % columns) * (cell_w + 2)
        y = title_h + 2 + (i // columns) * cell_h
        tile = Image.fromarray(frame).resize((cell_w, height * scale), Image.NEAREST)
        sheet.paste(tile, (x, y))
        if caption:
            draw.multiline_text((x + 1, y + height * scale + 1), caption, fill="black", spacing=1)
    return np.asarray(sheet)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an HxWx3 uint8 image as PNG (parent directories are created)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path

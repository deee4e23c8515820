"""Contact sheets tile frames in order, with room for captions, and reject mixed frames."""

from __future__ import annotations

import numpy as np
import pytest
from qt_common.contact_sheet import make_contact_sheet, save_png


def test_frames_are_tiled_in_order_and_scaled(tmp_path):
    frames = [np.full((4, 6, 3), 10 * (i + 1), np.uint8) for i in range(5)]
    sheet = make_contact_sheet(frames, [f"step {i}" for i in range(5)], columns=3, scale=2)
    # Frame i sits in row i // 3, column i % 3; its first pixel keeps its value after scaling.
    cell_w = 6 * 2 + 2
    cell_h = 4 * 2 + 12 + 4
    for i in range(5):
        y, x = 2 + (i // 3) * cell_h, 2 + (i % 3) * cell_w
        assert (sheet[y : y + 8, x : x + 12] == 10 * (i + 1)).all()
    path = save_png(tmp_path / "sub" / "sheet.png", sheet)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mixed_frame_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"frames\[1\]"):
        make_contact_sheet([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)])

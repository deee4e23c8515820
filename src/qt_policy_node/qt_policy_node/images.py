"""Camera message -> the model's uint8 RGB [H, W, 3] array, without copies where possible.

Why not cv_bridge: it is not available for NumPy 2 here (FIELD-NOTES), and the two cases that
matter are short. ``rgb8`` frames of the configured size with unpadded rows become a NumPy view
of the message's own buffer (``np.frombuffer``; no copy, no allocation of pixel memory). Other
accepted encodings and compressed frames are converted into one buffer allocated at configure
time and reused for every frame. Anything else is rejected with a reason naming the field, the
value received and what was expected; a rejected frame is never handed to the model.

The duck-typed ``msg`` arguments carry the fields of ``sensor_msgs/Image`` and
``sensor_msgs/CompressedImage``, so this module does not import ROS.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

# encoding -> (channels, OpenCV conversion to RGB or None when the bytes already are RGB)
_ENCODINGS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
}
ACCEPTED_ENCODINGS = tuple(_ENCODINGS)


class BadImage(ValueError):
    """A camera frame the policy must not act on; the message says why."""


class ImageConverter:
    """Converts frames to the configured size; one instance per node, reused for every frame."""

    def __init__(self, height: int, width: int, resize: bool = False) -> None:
        if height <= 0 or width <= 0:
            raise ValueError(f"image size: expected positive height and width, got {height}x{width}")
        self.height = height
        self.width = width
        self.resize = resize
        # Converted frames land here. One buffer is enough: the node's callbacks are mutually
        # exclusive, and a frame converted later is by definition the newer one to act on.
        self._buffer = np.zeros((height, width, 3), dtype=np.uint8)

    def from_image(self, msg: Any) -> np.ndarray:
        """``sensor_msgs/Image`` -> uint8 [H, W, 3] RGB; a view of ``msg.data`` for plain rgb8."""
        encoding = str(msg.encoding).lower()
        if encoding not in _ENCODINGS:
            raise BadImage(f"Image.encoding: got {msg.encoding!r}, expected one of {list(ACCEPTED_ENCODINGS)}")
        channels, conversion = _ENCODINGS[encoding]
        height, width, step = int(msg.height), int(msg.width), int(msg.step)
        if height <= 0 or width <= 0:
            raise BadImage(f"Image size: got {width}x{height}, expected a non-empty frame")
        if (height, width) != (self.height, self.width) and not self.resize:
            raise BadImage(
                f"Image size: got {width}x{height} (width x height), expected {self.width}x{self.height} "
                "(set resize_images to accept other sizes)"
            )
        if step < width * channels:
            raise BadImage(f"Image.step: got {step}, expected at least width*channels = {width * channels}")
        data = np.frombuffer(msg.data, dtype=np.uint8)
        if data.size < step * height:
            raise BadImage(f"Image.data: got {data.size} bytes, expected step*height = {step * height}")
        rows = data[: step * height].reshape(height, step)
        pixels = rows[:, : width * channels].reshape(height, width, channels)
        if conversion is None and not self.resize and step == width * channels:
            return pixels  # zero-copy: a view of the message buffer
        return self._finish(pixels, conversion)

    def from_compressed(self, msg: Any) -> np.ndarray:
        """``sensor_msgs/CompressedImage`` (jpeg/png) -> uint8 [H, W, 3] RGB in a reused buffer."""
        data = np.frombuffer(msg.data, dtype=np.uint8)
        if data.size == 0:
            raise BadImage("CompressedImage.data: empty")
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if decoded is None:
            raise BadImage(f"CompressedImage.data: could not decode {data.size} bytes as format {msg.format!r}")
        height, width = decoded.shape[:2]
        if (height, width) != (self.height, self.width) and not self.resize:
            raise BadImage(
                f"CompressedImage size: got {width}x{height} (width x height), expected "
                f"{self.width}x{self.height} (set resize_images to accept other sizes)"
            )
        return self._finish(decoded, cv2.COLOR_BGR2RGB)

    def _finish(self, pixels: np.ndarray, conversion: int | None) -> np.ndarray:
        out = self._buffer
        if (pixels.shape[0], pixels.shape[1]) != (self.height, self.width):
            if conversion is not None:
                pixels = cv2.cvtColor(pixels, conversion)
            cv2.resize(pixels, (self.width, self.height), dst=out, interpolation=cv2.INTER_AREA)
        elif conversion is not None:
            cv2.cvtColor(pixels, conversion, dst=out)
        else:
            np.copyto(out, pixels)
        return out

"""Camera messages (as read from a bag) -> RGB uint8 arrays of the dataset's shape.

The dataset stores RGB, the policy node receives rgb8 (docs/CONTRACTS.md); cameras send
other encodings, so every supported one is converted here and anything else is rejected by
name rather than guessed.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

# encoding -> channels in the message
RAW_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")


class ImageFieldError(ValueError):
    """A camera message field is invalid; ``field`` names it for the caller's error."""

    def __init__(self, field: str, problem: str):
        super().__init__(problem)
        self.field = field
        self.problem = problem


def image_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> HxWx3 RGB uint8 (a view where the encoding allows, else a copy)."""
    encoding = str(msg.encoding).lower()
    channels = RAW_ENCODINGS.get(encoding)
    if channels is None:
        raise ImageFieldError(
            "encoding", f"unknown image encoding {msg.encoding!r}; supported: {', '.join(RAW_ENCODINGS)}"
        )
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageFieldError("width", f"image size must be positive, got {width}x{height}")
    if step < width * channels:
        raise ImageFieldError("step", f"step {step} is smaller than width*channels = {width * channels}")
    data = np.asarray(msg.data, dtype=np.uint8)
    if data.size < step * height:
        raise ImageFieldError("data", f"{data.size} bytes, expected step*height = {step * height}")
    pixels = data[: step * height].reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if encoding == "rgb8":
        return pixels
    if encoding == "bgr8":
        return pixels[..., ::-1]
    if encoding == "rgba8":
        return pixels[..., :3]
    if encoding == "bgra8":
        return pixels[..., 2::-1]
    return np.repeat(pixels, 3, axis=2)  # mono8


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG or PNG) -> HxWx3 RGB uint8."""
    fmt = str(msg.format).lower()
    if not any(name in fmt for name in COMPRESSED_FORMATS):
        raise ImageFieldError("format", f"unknown compressed format {msg.format!r}; supported: jpeg, png")
    decoded = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise ImageFieldError("data", f"cannot decode {len(msg.data)} bytes as {msg.format!r}")
    return decoded[..., ::-1]


def resize_rgb(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to (height, width) with area averaging (the right filter for shrinking)."""
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image)
    interpolation = cv2.INTER_AREA if image.shape[0] >= height else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=interpolation)

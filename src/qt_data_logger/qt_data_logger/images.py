"""Camera messages (as read from a bag) -> RGB uint8 arrays of the dataset's shape.

The dataset stores RGB, the policy node receives rgb8 (docs/CONTRACTS.md); cameras send
other encodings, so every supported one is converted here and anything else is rejected by
name rather than guessed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
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


@dataclass
class RawImage:
    """The fields of a sensor_msgs/Image, with ``data`` a view into the serialised bytes."""

    stamp_ns: int
    height: int
    width: int
    encoding: str
    step: int
    data: np.ndarray


def parse_image_cdr(raw: bytes) -> RawImage | None:
    """Read a little-endian CDR sensor_msgs/Image without copying its pixels.

    A full deserialisation copies the 921 kB of a 640x480 frame just to resize it; this
    walks the fixed layout (header, height, width, encoding, is_bigendian, step, data) and
    returns a view. Big-endian data returns None (the caller deserialises it normally).
    """
    if len(raw) < 4 or raw[1] != 1:
        return None

    def aligned(pos: int, size: int) -> int:
        return pos + (-(pos - 4) % size)  # CDR alignment counts from after the 4-byte prefix

    try:
        sec, nanosec = struct.unpack_from("<iI", raw, 4)
        (frame_len,) = struct.unpack_from("<I", raw, 12)
        pos = aligned(16 + frame_len, 4)
        height, width, enc_len = struct.unpack_from("<III", raw, pos)
        pos += 12
        encoding = bytes(raw[pos : pos + max(enc_len - 1, 0)]).decode()
        pos = aligned(pos + enc_len + 1, 4)  # + is_bigendian (uint8)
        step, size = struct.unpack_from("<II", raw, pos)
        pos += 8
    except (struct.error, UnicodeDecodeError) as exc:
        raise ImageFieldError("data", f"malformed serialised Image ({exc})") from None
    if pos + size > len(raw):
        raise ImageFieldError("data", f"data length {size} runs past the message end")
    data = np.frombuffer(raw, dtype=np.uint8, count=size, offset=pos)
    return RawImage(sec * 1_000_000_000 + nanosec, height, width, encoding, step, data)


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
    """Resize to (height, width) with OpenCV's area filter.

    The same call as the policy node's (qt_policy_node.images), so a model sees at run time
    exactly the kind of pixels it was trained on.
    """
    if image.shape[:2] == (height, width):
        return np.array(image, dtype=np.uint8, order="C")  # a copy: never pin the message buffer
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_AREA)

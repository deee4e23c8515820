"""Camera messages -> model input: zero-copy rgb8, conversions, and rejection of bad frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from qt_policy_node.images import BadImage, ImageConverter
from sensor_msgs.msg import CompressedImage, Image

H, W = 48, 64


def frame(seed: int = 0, height: int = H, width: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def image_msg(pixels: np.ndarray, encoding: str = "rgb8", pad: int = 0) -> Image:
    height, width, channels = pixels.shape
    rows = np.zeros((height, width * channels + pad), dtype=np.uint8)
    rows[:, : width * channels] = pixels.reshape(height, -1)
    msg = Image(height=height, width=width, encoding=encoding, step=width * channels + pad)
    msg.data = rows.tobytes()
    return msg


def test_rgb8_is_a_view_of_the_message_buffer():
    rgb = frame()
    msg = image_msg(rgb)
    out = ImageConverter(H, W).from_image(msg)
    np.testing.assert_array_equal(out, rgb)
    assert np.shares_memory(out, np.frombuffer(msg.data, dtype=np.uint8))
    assert out.flags.c_contiguous


def test_conversions_reuse_one_buffer():
    converter = ImageConverter(H, W)
    rgb = frame(1)
    first = converter.from_image(image_msg(np.ascontiguousarray(rgb[..., ::-1]), "bgr8"))
    np.testing.assert_array_equal(first, rgb)
    rgba = np.concatenate([rgb, np.full((H, W, 1), 7, np.uint8)], axis=2)
    second = converter.from_image(image_msg(rgba, "rgba8"))
    np.testing.assert_array_equal(second, rgb)
    assert second is first  # the same preallocated array, not a new one


def test_padded_rows_are_accepted():
    rgb = frame(2)
    out = ImageConverter(H, W).from_image(image_msg(rgb, pad=16))
    np.testing.assert_array_equal(out, rgb)


def test_compressed_png_decodes_to_rgb():
    rgb = frame(3)
    ok, encoded = cv2.imencode(".png", rgb[..., ::-1])
    assert ok
    msg = CompressedImage(format="png")
    msg.data = encoded.tobytes()
    np.testing.assert_array_equal(ImageConverter(H, W).from_compressed(msg), rgb)


def test_resize_only_when_enabled():
    big = frame(4, 96, 128)
    with pytest.raises(BadImage, match=r"128x96.*expected 64x48"):
        ImageConverter(H, W).from_image(image_msg(big))
    out = ImageConverter(H, W, resize=True).from_image(image_msg(big))
    assert out.shape == (H, W, 3) and out.dtype == np.uint8


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: setattr(m, "encoding", "mono16"), r"Image.encoding: got 'mono16'"),
        (lambda m: setattr(m, "encoding", "32FC1"), r"expected one of"),
        (lambda m: setattr(m, "step", 10), r"Image.step: got 10"),
        (lambda m: setattr(m, "data", bytes(100)), r"Image.data: got 100 bytes"),
        (lambda m: setattr(m, "width", 0), r"Image size"),
    ],
)
def test_bad_frames_are_rejected_with_the_field(mutate, message):
    msg = image_msg(frame())
    mutate(msg)
    with pytest.raises(BadImage, match=message):
        ImageConverter(H, W).from_image(msg)


def test_undecodable_compressed_frame_is_rejected():
    msg = CompressedImage(format="jpeg")
    msg.data = b"\xff\xd8 definitely not a jpeg"
    with pytest.raises(BadImage, match=r"CompressedImage.data: could not decode"):
        ImageConverter(H, W).from_compressed(msg)

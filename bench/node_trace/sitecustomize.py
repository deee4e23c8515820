"""Stage trace of a policy node process for ``bench/policy_latency.py --trace`` (bench only).

Python imports ``sitecustomize`` at start-up from the first directory on PYTHONPATH that has
one, so the bench puts this directory there for the node it starts and sets QT_NODE_TRACE to
an output path. Without that variable nothing is changed. With it, the node's own classes
(image conversion, control tick, decode) and rclpy's ``Publisher.publish``
are wrapped to record wall-clock times, written as JSON when the process exits. Why from
outside the node: the node carries no timing code of its own beyond what PolicyStatus
reports, and a trace must cost the node no more than a list append per stage.
"""

import os

if os.environ.get("QT_NODE_TRACE"):
    import atexit
    import json
    import time

    import rclpy.publisher

    from qt_policy_node import controller, decoder, images

    _EVENTS: list = []  # [stage, wall time s, frame stamp ns or None]

    def _timed(cls, name, before, after):
        original = getattr(cls, name)

        def run(self, *args, **kwargs):
            _EVENTS.append((before, time.time(), None))
            out = original(self, *args, **kwargs)
            _EVENTS.append((after, time.time(), None))
            return out

        setattr(cls, name, run)

    def _from_image(original):
        def run(self, msg):
            _EVENTS.append(("callback", time.time(), msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec))
            out = original(self, msg)
            _EVENTS.append(("converted", time.time(), None))
            return out

        return run

    def _publish(original):
        def run(self, msg):
            _EVENTS.append(("publish " + type(msg).__name__, time.time(), None))
            original(self, msg)
            _EVENTS.append(("published " + type(msg).__name__, time.time(), None))

        return run

    images.ImageConverter.from_image = _from_image(images.ImageConverter.from_image)
    _timed(controller.PolicyController, "tick", "tick", "tick done")
    _timed(decoder.PolicyDecoder, "decode", "decode", "decoded")
    rclpy.publisher.Publisher.publish = _publish(rclpy.publisher.Publisher.publish)

    @atexit.register
    def _write() -> None:
        with open(os.environ["QT_NODE_TRACE"], "w") as out:
            json.dump(_EVENTS, out)

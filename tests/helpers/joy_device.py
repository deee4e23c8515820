"""A gamepad played by a test: real sensor_msgs/Joy messages from a RosPeer's publisher."""

from __future__ import annotations

from sensor_msgs.msg import Joy

from helpers.ros_peer import RosPeer


class JoyDevice:
    """Plays a gamepad: publishes sensor_msgs/Joy (8 axes, 11 buttons, Xbox layout) while spinning."""

    def __init__(self, peer: RosPeer, topic: str = "/joy", axes: int = 8, buttons: int = 11):
        self.peer = peer
        self.pub = peer.publisher(Joy, topic)
        self.axes = [0.0] * axes
        self.buttons = [0] * buttons

    def send(self, seconds: float = 0.3, **changes: float) -> None:
        for key, value in changes.items():
            kind, index = key.split("_")
            (self.axes if kind == "axis" else self.buttons)[int(index)] = value
        for _ in range(max(1, round(seconds / 0.05))):
            msg = Joy(axes=[float(a) for a in self.axes], buttons=[int(b) for b in self.buttons])
            msg.header.stamp = self.peer.node.get_clock().now().to_msg()
            self.pub.publish(msg)
            self.peer.spin_for(0.05)

    def press(self, button: int) -> None:
        self.send(0.2, **{f"button_{button}": 1})
        self.send(0.2, **{f"button_{button}": 0})

"""Every qt_msgs type crosses real Fast DDS between two processes unchanged."""

from __future__ import annotations

import json

import pytest
from helpers.messages import message_to_dict, sample_message
from helpers.msg_peer import import_interface
from helpers.processes import python_child

MESSAGE_TYPES = ["qt_msgs/msg/ArmAction", "qt_msgs/msg/EpisodeEvent", "qt_msgs/msg/PolicyStatus"]
SERVICE_TYPES = ["qt_msgs/srv/StartEpisode", "qt_msgs/srv/EndEpisode"]


def test_every_message_type_is_covered():
    import qt_msgs.msg
    import qt_msgs.srv

    built_msgs = {f"qt_msgs/msg/{n}" for n in dir(qt_msgs.msg) if not n.startswith("_")}
    built_srvs = {
        f"qt_msgs/srv/{n}" for n in dir(qt_msgs.srv)
        if not n.startswith("_") and not n.endswith(("_Request", "_Response", "_Event"))
    }
    assert built_msgs == set(MESSAGE_TYPES)
    assert built_srvs == set(SERVICE_TYPES)


@pytest.mark.parametrize("type_name", MESSAGE_TYPES)
def test_message_round_trip_across_processes(type_name, children):
    seed = 1234
    subscriber = python_child("helpers.msg_peer", "sub", type_name)
    children.append(subscriber)
    subscriber.wait_for_line("SUBSCRIBED", timeout=30)
    publisher = python_child("helpers.msg_peer", "pub", type_name, str(seed))
    children.append(publisher)

    received = json.loads(subscriber.wait_for_line(r"^RECEIVED (.*)$", timeout=60)[1])

    expected = message_to_dict(sample_message(import_interface(type_name), seed))
    assert received.keys() == expected.keys()
    for field in expected:
        assert received[field] == expected[field], f"{type_name}.{field} changed on the wire"
    assert subscriber.wait(timeout=30) == 0


@pytest.mark.parametrize("type_name", SERVICE_TYPES)
def test_service_round_trip_across_processes(type_name, children):
    import rclpy

    seed = 99
    server = python_child("helpers.msg_peer", "serve", type_name, str(seed))
    children.append(server)
    server.wait_for_line("SERVING", timeout=30)

    srv_cls = import_interface(type_name)
    request = sample_message(srv_cls.Request, seed + 1)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("qt_test_client", context=context)
        client = node.create_client(srv_cls, "qt_test/service")
        assert client.wait_for_service(timeout_sec=30), "service never appeared"
        future = client.call_async(request)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.spin_until_future_complete(future, timeout_sec=30)
        assert future.done(), "no response within 30 s"
        response = future.result()
    finally:
        rclpy.try_shutdown(context=context)

    echoed = json.loads(server.wait_for_line(r"^REQUEST (.*)$", timeout=10)[1])
    assert echoed == message_to_dict(request)
    assert message_to_dict(response) == message_to_dict(sample_message(srv_cls.Response, seed))

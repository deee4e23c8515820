"""A node the rest of a launch cannot do without: its exit takes the whole launch down.

Why: ``ros2 launch`` keeps running when one of its processes dies and exits 0 at the end, so a
policy node that refused its model (or a mistyped parameter) left the sim running with nobody
driving it, and scripts saw success. ``OnProcessExit -> Shutdown`` with a reason naming the node
and its exit code stops the others; a non-zero exit code is raised as an error inside the launch
service, which is the one way ``ros2 launch`` itself exits non-zero (it logs the reason, shuts
everything down with it and returns 1). An exit during a shutdown already under way (Ctrl-C,
another required node) changes nothing.

Used by the launch files only; ``launch`` is imported when called, so qt_common needs no ROS.
"""

from __future__ import annotations

from typing import Any


class RequiredNodeExited(RuntimeError):
    """A required node exited with a non-zero code; the message says which and why it mattered."""


def shutdown_when_exits(node: Any, consequence: str) -> Any:
    """``RegisterEventHandler(OnProcessExit(node))`` ending the launch; ``consequence`` says why the
    rest is pointless without it (it becomes part of the shutdown reason)."""
    from launch.actions import RegisterEventHandler, Shutdown
    from launch.event_handlers import OnProcessExit

    def on_exit(event: Any, context: Any) -> list[Any] | None:
        if context.is_shutdown:
            return None
        reason = f"{event.process_name} exited with code {event.returncode}: {consequence}"
        if event.returncode:
            raise RequiredNodeExited(reason)
        return [Shutdown(reason=reason)]

    return RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_exit))

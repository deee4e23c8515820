"""``--topics FILE`` of ``qt convert``: the topic map's names for the converter's topic options.

Why a separate step: the map (qt_common.topic_map) is the one place a robot's topic names are
written down for the recorder, the converter and the policy node. An option given explicitly on
the command line that disagrees with the map is an error naming both, never silently overridden.
"""

from __future__ import annotations

import argparse
from typing import Any

from qt_common.topic_map import TopicMap, TopicMapError


def apply(parser: argparse.ArgumentParser, args: argparse.Namespace, options: Any) -> None:
    """Set ``options``' topic fields from ``args.topics`` (if given); SystemExit(2) on a bad map."""
    if not getattr(args, "topics", ""):
        return
    try:
        fields = TopicMap.load(args.topics).converter_fields()
    except TopicMapError as exc:
        parser.error(str(exc))
    for name, topic in fields.items():
        given, default = getattr(args, name, None), parser.get_default(name)
        if given is not None and given != default and given != topic:
            parser.error(f"--{name.replace('_', '-')} {given} disagrees with the topic map's {topic} ({args.topics})")
        setattr(options, name, topic)

"""Hostile inputs against the bag tools and the converter: one table row per input and its promise.

Promises checked: a stray file is named and left alone, nothing outside the folder given is
touched, two episodes are never merged, a finished episode is never lost, a killed episode is
recovered as interrupted (never as training data), and a refused conversion writes no dataset.
docs/DATA.md "Hostile inputs" lists the same table.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.episode_bags import Msg, craft_episode, pose_msg, write_bag
from qt_data_logger.bag_repair import RepairError, quarantine, repair
from qt_data_logger.bag_status import inspect_bag, scan_bags
from qt_data_logger.bag_writer import EpisodeBagWriter
from qt_data_logger.bags_cli import main as bags_main
from qt_data_logger.convert import ConvertError, ConvertOptions, convert

from qt_data_logger import bag_format as bf

OPTIONS = ConvertOptions(image_shape=(24, 32, 3))


def five_episodes(root: Path) -> Path:
    """root/bags with five finished episodes (ep-2 a failure)."""
    for i in range(5):
        episode = craft_episode(steps=4, seed=i, episode_id=f"ep-{i}", outcome="failure" if i == 2 else "success")
        write_bag(root / "bags" / f"ep-{i}", episode.messages, episode.custom)
    return root / "bags"


def dead_recorder(bag: Path, episode_id: str) -> None:
    """The unfinished-bag marker of a recorder that is gone (another host: never taken as alive)."""
    bf.write_marker(bag, episode_id, 0)
    marker = json.loads((bag / bf.RECORDING_MARKER).read_text())
    (bag / bf.RECORDING_MARKER).write_text(json.dumps({**marker, "host": "killed-host"}))


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def stray_mcap_in_bags_folder(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bags = five_episodes(tmp)
    (bags / "stray.mcap").write_bytes(b"")
    before = tree(tmp)
    assert bags_main(["check", str(bags)]) == 0
    out = capsys.readouterr().out
    assert "stray" in out and "stray.mcap" in out and "5 ok" in out
    assert bags_main(["repair", str(bags)]) == 0 and "nothing to repair" in capsys.readouterr().out
    assert bags_main(["quarantine", str(bags)]) == 0
    assert tree(tmp) == before, "a bag tool touched files"
    report = convert([bags], tmp / "ds", OPTIONS, jobs=1, progress=False)
    assert len(report.added) == 5 and any("stray.mcap" in note for note in report.notes)
    assert report.dataset is not None and len(report.dataset.episodes) == 5


def folder_holding_a_bag(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bags = five_episodes(tmp)
    bf.write_marker(bags, "outer", 0)  # a marker dropped at the top: the folder now "is" a bag
    for act in (repair, quarantine):
        with pytest.raises(RepairError, match="holds other bag"):
            act(bags)
    assert len(scan_bags([bags / "ep-0"]).bags) == 1 and not (tmp / bf.QUARANTINE_DIR).exists()


def two_starts_in_one_bag(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = craft_episode(steps=3, episode_id="a"), craft_episode(steps=3, seed=1, episode_id="b")
    bag = tmp / "bags" / "merged"
    bag.mkdir(parents=True)
    write_bag(tmp / "part", a.messages[:-1] + b.messages[:-1])  # two STARTs, no END
    shutil.move(str(next((tmp / "part").glob("*.mcap"))), bag / "merged_0.mcap")
    dead_recorder(bag, "merged")
    with pytest.raises(RepairError, match="2 episode STARTs"):
        repair(bag)
    assert (bag / "merged_0.mcap").exists()


def killed_mid_episode(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What survives a SIGKILL is what reached the OS: copy the bag while the writer is open."""
    episode = craft_episode(steps=6, episode_id="killed")
    store = bf.episode_typestore()
    topics = {m.topic: m.msgtype for m in episode.messages}
    specs = [bf.TopicSpec.make(t, ty, store) for t, ty in topics.items()]
    writer = EpisodeBagWriter(tmp / "live" / "killed", specs, "killed", fsync=False, flush_interval_s=0.0)
    writer.open()
    for m in episode.messages[:-1]:  # no END event: killed before the episode ended
        writer.write(m.topic, m.log_ns, bytes(store.serialize_cdr(m.msg, m.msgtype)))
    shutil.copytree(tmp / "live", tmp / "bags")  # the files as a SIGKILL would leave them
    writer.abort("test over")
    bag = tmp / "bags" / "killed"
    dead_recorder(bag, "killed")
    assert sum(f.stat().st_size for f in bag.rglob("*.mcap")) > 0
    assert inspect_bag(bag).state == "interrupted"
    result = repair(bag)
    assert result.messages == len(episode.messages) - 1 and result.outcome == bf.OUTCOME_INTERRUPTED
    assert inspect_bag(bag).state == "unlabelled" and (tmp / "bags" / bf.QUARANTINE_DIR / "killed").is_dir()


def truncated_bag(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bags = five_episodes(tmp)
    data = next((bags / "ep-1").glob("*.mcap"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    assert inspect_bag(bags / "ep-1").state == "corrupt"
    with pytest.raises(ConvertError, match="ep-1"):
        convert([bags], tmp / "ds", OPTIONS, jobs=1, progress=False)
    assert not (tmp / "ds").exists(), "a refused conversion left a dataset behind"


def garbled_metadata(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bags = five_episodes(tmp)
    (bags / "ep-3" / bf.METADATA_FILE).write_text("rosbag2_bagfile_information: [}{")
    status = inspect_bag(bags / "ep-3")
    assert status.state == "corrupt" and "metadata.yaml" in status.detail


def pose_on_action_topic(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    episode = craft_episode(steps=3)
    messages = [m if m.topic != "/qt/action" else Msg(m.topic, "geometry_msgs/msg/PoseStamped", m.log_ns,
                                                      pose_msg(m.log_ns, (0.0, 0.0, 0.0)))
                for m in episode.messages]
    bag = write_bag(tmp / "bags" / "wrong", messages, episode.custom)
    with pytest.raises(ConvertError, match=r"topic /qt/action, field type: geometry_msgs/msg/PoseStamped"):
        convert([bag], tmp / "ds", OPTIONS, jobs=1, progress=False)


def folder_without_bags(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    with pytest.raises(ConvertError, match=r"no bag directory in .*notes.*readme\.txt"):
        convert([folder], tmp / "ds", OPTIONS, jobs=1, progress=False)


@dataclass(frozen=True)
class Row:
    name: str
    promise: str
    check: Callable[[Path, pytest.CaptureFixture[str]], None]


TABLE = [
    Row("stray empty .mcap in the bags folder", "named, left alone; 5 episodes stay 5", stray_mcap_in_bags_folder),
    Row("marker dropped on a folder of bags", "repair/quarantine refuse; nothing moved", folder_holding_a_bag),
    Row("two episodes' data in one bag", "repair refuses to merge", two_starts_in_one_bag),
    Row("recorder SIGKILLed mid-episode", "flushed data repaired as interrupted", killed_mid_episode),
    Row("truncated data file", "corrupt; convert refuses, no dataset written", truncated_bag),
    Row("garbled metadata.yaml", "corrupt, detail names metadata.yaml", garbled_metadata),
    Row("PoseStamped on the action topic", "BagError naming topic and type", pose_on_action_topic),
    Row("folder with no bag", "ConvertError naming the folder and its entries", folder_without_bags),
]


@pytest.mark.parametrize("row", TABLE, ids=[row.name for row in TABLE])
def test_hostile_bag_input(row: Row, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    row.check(tmp_path, capsys)

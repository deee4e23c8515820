"""The dataset format: round trip, Monte Carlo returns, append, atomicity, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from qt_common.action_spec import ActionSpec
from qt_common.dataset import Dataset, DatasetError, DatasetWriter, Episode, monte_carlo_returns

SHAPE = (8, 8, 3)


def make_episode(length: int, outcome: str, seed: int, digest: str = "", instruction: str = "pick up the red cube"):
    rng = np.random.default_rng(seed)
    return Episode(
        images=rng.integers(0, 256, (length, *SHAPE), dtype=np.uint8),
        bins=rng.integers(0, 256, (length, 5)),
        proprio=rng.normal(size=(length, 2)).astype(np.float32),
        instruction=instruction,
        outcome=outcome,
        episode_id=f"ep{seed}",
        bag_digest=digest,
    )


def write(path, episodes, append=False):
    with DatasetWriter(path, ActionSpec.default(), SHAPE, proprio_dim=2, gamma=0.9, append=append) as writer:
        for ep in episodes:
            if not writer.has_bag(ep.bag_digest):
                writer.add_episode(ep)
    return Dataset(path)


def test_round_trip_rewards_and_returns(tmp_path):
    a, b = make_episode(3, "success", 1, "d1"), make_episode(2, "failure", 2, "d2", "push the cube")
    ds = write(tmp_path / "ds", [a, b])
    assert len(ds) == 5 and len(ds.episodes) == 2
    assert np.array_equal(ds.images[:3], a.images) and np.array_equal(ds.bins[3:], b.bins)
    assert ds.reward.tolist() == [0, 0, 1, 0, 0]
    assert ds.done.tolist() == [False, False, True, False, True]
    assert np.allclose(ds.return_to_go, [0.81, 0.9, 1.0, 0.0, 0.0])
    assert ds.episode_index.tolist() == [0, 0, 0, 1, 1]
    assert [ds.instructions[i] for i in ds.instruction_index[[0, 3]]] == ["pick up the red cube", "push the cube"]
    assert ds.summary()["success_rate"] == 0.5


def test_monte_carlo_returns_restart_at_episode_end():
    reward = np.array([0, 1, 0, 0, 1], np.float32)
    done = np.array([False, True, False, False, True])
    assert np.allclose(monte_carlo_returns(reward, done, 0.5), [0.5, 1.0, 0.25, 0.5, 1.0])


def test_append_skips_known_bags_and_keeps_old_frames(tmp_path):
    a, b = make_episode(3, "success", 1, "d1"), make_episode(4, "failure", 2, "d2")
    write(tmp_path / "ds", [a])
    ds = write(tmp_path / "ds", [a, b], append=True)
    assert [e["bag_digest"] for e in ds.episodes] == ["d1", "d2"]
    assert np.array_equal(ds.images[3:], b.images) and ds.episodes[1]["start"] == 3
    assert not list(tmp_path.glob(".ds.*")), "staging or previous directories left behind"


def test_failed_write_leaves_previous_dataset_intact(tmp_path):
    write(tmp_path / "ds", [make_episode(3, "success", 1)])
    before = (tmp_path / "ds" / "meta.json").read_text()
    with pytest.raises(DatasetError, match="outcome must be one of"):
        write(tmp_path / "ds", [make_episode(2, "failure", 5), make_episode(2, "discard", 6)], append=True)
    assert (tmp_path / "ds" / "meta.json").read_text() == before
    assert len(Dataset(tmp_path / "ds")) == 3


@pytest.mark.parametrize(
    "change, message",
    [
        ({"images": np.zeros((2, 4, 4, 3), np.uint8)}, "images must be uint8"),
        ({"bins": np.full((2, 5), 300)}, r"bins must lie in \[0, 255\]"),
        ({"bins": np.zeros((2, 4), int)}, "bins must be integer"),
        ({"proprio": np.full((2, 2), np.nan, np.float32)}, "proprio contains NaN"),
        ({"instruction": ""}, "instruction must be a non-empty"),
    ],
)
def test_bad_episode_names_the_field(tmp_path, change, message):
    ep = make_episode(2, "success", 3)
    for key, value in change.items():
        setattr(ep, key, value)
    with pytest.raises(DatasetError, match=message):
        write(tmp_path / "ds", [ep])
    assert not (tmp_path / "ds").exists()


def test_reader_rejects_other_schema_version(tmp_path):
    write(tmp_path / "ds", [make_episode(2, "success", 1)])
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    meta["schema_version"] = 99
    (tmp_path / "ds" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="schema_version"):
        Dataset(tmp_path / "ds")

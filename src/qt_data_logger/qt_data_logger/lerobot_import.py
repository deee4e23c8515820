"""``qt dataset import-lerobot DIR -o DATASET [--mapping FILE.yaml]``: a local LeRobot v3.0 dataset
-> a qt training dataset.

Why a mapping file: a LeRobot dataset names its features freely (``observation.images.top``,
``observation.state`` of any robot, actions in its own units), and nothing in it says which
episodes succeeded. The mapping says which feature is the image, the proprio and the action, how
continuous action values become the action spec's bins, and where success comes from. Without
``--mapping`` the defaults below fit the datasets ``qt convert --format lerobot`` writes (and any
dataset that uses the same LeRobot feature names and the qt action spec's dimensions).

    image: observation.images.camera       # a video or image feature
    proprio:                               # optional
      feature: observation.state
      layout: ee_yaw_gripper               # a qt_common.proprio layout; default: from its size
    object_poses: observation.environment_state   # optional (sim ground truth)
    action:
      feature: action
      dimensions: [dx, dy, dz, dyaw, gripper]     # the spec dimension of each element; default:
                                                  # the feature's names, else the spec's order
      scale: [1, 1, 1, 1, 1]       # value_in_spec_units = value * scale + offset (default 1 and 0)
      offset: [0, 0, 0, 0, 0]
      out_of_range: error          # error | clip: values outside the spec's [low, high]
    success:
      from: episode_column         # episode_column: qt/outcome of a qt export ("success"/"failure")
      column: qt/outcome           # field: an episode succeeded if the feature is true on its last frame
      # from: field, field: next.success | from: reward, field: next.reward, threshold: 1.0
      # from: all (every episode succeeded: demonstrations)
    gamma: 0.98                    # discount of the stored returns
    image_size: [96, 96]           # default: the feature's size

Every problem is an ImportError_ naming the mapping field or the dataset file and feature.
Frames are decoded with PyAV (the project's own dependency), each video file once, in order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qt_common.action_spec import ActionSpec
from qt_common.dataset import DatasetWriter, Episode

from qt_common import proprio as layouts
from qt_data_logger import lerobot_format as F

DEFAULT_MAPPING: dict[str, Any] = {
    "image": F.IMAGE_KEY,
    "proprio": {"feature": F.STATE_KEY},
    "object_poses": F.ENV_STATE_KEY,
    "action": {"feature": F.ACTION_KEY},
    "success": {"from": "episode_column", "column": F.QT_OUTCOME},
    "gamma": 0.98,
}
SUCCESS_SOURCES = ("episode_column", "field", "reward", "all")
MAPPING_KEYS = ("image", "proprio", "object_poses", "action", "success", "gamma", "image_size")


class ImportError_(ValueError):
    """The LeRobot dataset cannot be imported with this mapping; the message says what to change."""


@dataclass
class Mapping:
    """The parsed mapping (see the module docstring)."""

    image: str
    action: str
    dimensions: list[str] | None = None
    scale: np.ndarray | None = None
    offset: np.ndarray | None = None
    clip: bool = False
    proprio: str = ""
    proprio_layout: str = ""
    object_poses: str = ""
    success_from: str = "episode_column"
    success_field: str = F.QT_OUTCOME
    threshold: float = 1.0
    gamma: float = 0.98
    image_size: tuple[int, int] | None = None
    optional: set[str] = field(default_factory=set)  # features that may be absent (defaults)

    @classmethod
    def load(cls, path: str | Path | None) -> Mapping:
        if path is None:
            return cls.parse(DEFAULT_MAPPING, "default mapping", defaults=True)
        from qt_common.yaml_file import read_yaml

        return cls.parse(read_yaml(path, "mapping", ImportError_), str(path))

    @classmethod
    def parse(cls, data: Any, source: str, defaults: bool = False) -> Mapping:
        if not isinstance(data, dict):
            raise ImportError_(f"mapping {source}: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(MAPPING_KEYS))
        if unknown:
            raise ImportError_(f"mapping {source}: unknown key(s) {unknown}; known: {list(MAPPING_KEYS)}")
        for key in ("image", "action"):
            if key not in data:
                raise ImportError_(f"mapping {source}: field {key}: missing (which feature is the {key})")
        action = data["action"] if isinstance(data["action"], dict) else {"feature": data["action"]}
        proprio = data.get("proprio") or {}
        proprio = proprio if isinstance(proprio, dict) else {"feature": proprio}
        success = data.get("success") or {"from": "all"}
        source_kind = success.get("from", "")
        if source_kind not in SUCCESS_SOURCES:
            raise ImportError_(f"mapping {source}: field success.from: {source_kind!r}; expected one of "
                               f"{list(SUCCESS_SOURCES)}")
        out = action.get("out_of_range", "error")
        if out not in ("error", "clip"):
            raise ImportError_(f"mapping {source}: field action.out_of_range: {out!r}; expected error or clip")
        size = data.get("image_size")
        mapping = cls(
            image=str(data["image"]), action=str(action.get("feature", "")),
            dimensions=list(action["dimensions"]) if action.get("dimensions") else None,
            scale=np.asarray(action["scale"], dtype=np.float64) if "scale" in action else None,
            offset=np.asarray(action["offset"], dtype=np.float64) if "offset" in action else None,
            clip=out == "clip", proprio=str(proprio.get("feature", "") or ""),
            proprio_layout=str(proprio.get("layout", "") or ""), object_poses=str(data.get("object_poses") or ""),
            success_from=source_kind,
            success_field=str(success.get("column") or success.get("field") or ""),
            threshold=float(success.get("threshold", 1.0)), gamma=float(data.get("gamma", 0.98)),
            image_size=(int(size[0]), int(size[1])) if size else None,
        )
        if source_kind in ("episode_column", "field", "reward") and not mapping.success_field:
            name = "column" if source_kind == "episode_column" else "field"
            raise ImportError_(f"mapping {source}: field success.{name}: missing for success.from {source_kind}")
        if defaults:
            mapping.optional = {"proprio", "object_poses", "success"}
        return mapping


def _feature(info: dict[str, Any], name: str, what: str, root: Path) -> dict[str, Any]:
    features = info["features"]
    if name not in features:
        raise ImportError_(f"{root / F.INFO_PATH}: feature {name!r} (mapping field {what}) not in the dataset; "
                           f"features: {sorted(features)}")
    return features[name]


def _resolve(mapping: Mapping, info: dict[str, Any], episodes: dict[str, list[Any]], root: Path) -> None:
    """Check the mapping against the dataset's features; drop optional defaults that are absent."""
    features = info["features"]
    for attr in ("proprio", "object_poses"):
        if attr in mapping.optional and getattr(mapping, attr) not in features:
            setattr(mapping, attr, "")
    if "success" in mapping.optional and mapping.success_field not in episodes:
        raise ImportError_(f"{root}: no success information: episodes have no {mapping.success_field!r} column "
                           "(not a qt export); give --mapping with success.from field|reward|all")
    image = _feature(info, mapping.image, "image", root)
    if image["dtype"] not in ("video", "image") or len(image["shape"]) != 3:
        raise ImportError_(f"{root / F.INFO_PATH}: feature {mapping.image!r} (mapping field image): dtype "
                           f"{image['dtype']} shape {image['shape']}; expected a video or image of [H, W, 3]")
    action = _feature(info, mapping.action, "action.feature", root)
    if action["dtype"] not in ("float32", "float64") or len(action["shape"]) != 1:
        raise ImportError_(f"{root / F.INFO_PATH}: feature {mapping.action!r} (mapping field action.feature): dtype "
                           f"{action['dtype']} shape {action['shape']}; expected a float vector")
    if mapping.proprio:
        _feature(info, mapping.proprio, "proprio.feature", root)
    if mapping.object_poses:
        _feature(info, mapping.object_poses, "object_poses", root)
    if mapping.success_from in ("field", "reward"):
        _feature(info, mapping.success_field, "success.field", root)
    if mapping.success_from == "episode_column" and mapping.success_field not in episodes:
        raise ImportError_(f"{root}: episodes have no column {mapping.success_field!r} (mapping field "
                           f"success.column); columns: {sorted(episodes)}")


def _action_map(mapping: Mapping, info: dict[str, Any], spec: ActionSpec, root: Path) -> np.ndarray:
    """Index into the feature vector for each spec dimension (the feature may hold more)."""
    feature = info["features"][mapping.action]
    size = int(feature["shape"][0])
    names = mapping.dimensions
    if names is None:
        given = feature.get("names")
        given = given if isinstance(given, list) else None
        names = given if given and set(spec.names) <= set(given) else spec.names if size == spec.num_dims else None
    if names is None:
        raise ImportError_(f"{root / F.INFO_PATH}: feature {mapping.action!r} has {size} values named "
                           f"{feature.get('names')}; say which is which with mapping field action.dimensions "
                           f"(spec: {spec.names})")
    if len(names) != size:
        raise ImportError_(f"mapping field action.dimensions: {len(names)} names for {size} values of "
                           f"{mapping.action!r}")
    missing = [n for n in spec.names if n not in names]
    if missing:
        raise ImportError_(f"mapping field action.dimensions: no element is {missing} (the action spec needs "
                           f"{spec.names}; got {names})")
    for what, array in (("scale", mapping.scale), ("offset", mapping.offset)):
        if array is not None and array.shape != (spec.num_dims,):
            raise ImportError_(f"mapping field action.{what}: expected {spec.num_dims} values ({spec.names}), got "
                               f"{array.tolist()}")
    return np.array([names.index(n) for n in spec.names])


class _Videos:
    """Frames of the image feature: each MP4 file decoded once with PyAV, kept until the next file."""

    def __init__(self, root: Path, info: dict[str, Any], key: str) -> None:
        self.root, self.key, self.fps = root, key, float(info["fps"])
        self.template = info.get("video_path") or F.VIDEO_PATH
        self._file: tuple[int, int] | None = None
        self._frames: list[np.ndarray] = []

    def episode(self, row: dict[str, Any], length: int) -> np.ndarray:
        prefix = f"videos/{self.key}/"
        try:
            where = (int(row[prefix + "chunk_index"]), int(row[prefix + "file_index"]))
            start = float(row[prefix + "from_timestamp"])
        except KeyError as exc:
            raise ImportError_(f"{self.root}: episode {row['episode_index']}: episodes column {exc.args[0]} missing "
                               "(where its video frames are)") from None
        if where != self._file:
            self._load(where)
        first = round(start * self.fps)
        if first + length > len(self._frames):
            raise ImportError_(f"{self._path(where)}: episode {row['episode_index']} needs frames {first}.."
                               f"{first + length - 1}, the file has {len(self._frames)}")
        return np.stack(self._frames[first:first + length])

    def _path(self, where: tuple[int, int]) -> Path:
        return self.root / self.template.format(video_key=self.key, chunk_index=where[0], file_index=where[1])

    def _load(self, where: tuple[int, int]) -> None:
        import av

        path = self._path(where)
        if not path.is_file():
            raise ImportError_(f"{path}: missing (video of feature {self.key!r})")
        with av.open(str(path)) as container:
            self._frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        self._file = where


def _image_column(values: list[Any], root: Path, key: str) -> np.ndarray:
    """An ``image`` feature stored in the Parquet table ({bytes, path} per frame) -> RGB frames."""
    import cv2

    frames = []
    for value in values:
        data = value.get("bytes") if isinstance(value, dict) else None
        if not data:
            raise ImportError_(f"{root}: feature {key!r}: a frame without embedded bytes (external image files are "
                               "not read)")
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        frames.append(bgr[..., ::-1])
    return np.stack(frames)


def _outcome(mapping: Mapping, row: dict[str, Any], columns: dict[str, np.ndarray], root: Path) -> str:
    kind = mapping.success_from
    if kind == "all":
        return "success"
    if kind == "episode_column":
        value = row[mapping.success_field]
        if isinstance(value, str):
            if value not in ("success", "failure"):
                raise ImportError_(f"{root}: episode {row['episode_index']}: column {mapping.success_field!r} is "
                                   f"{value!r}; expected success or failure")
            return value
        return "success" if bool(value) else "failure"
    last = np.asarray(columns[mapping.success_field][-1], dtype=np.float64).reshape(-1)[0]
    ok = last >= mapping.threshold if kind == "reward" else bool(last)
    return "success" if ok else "failure"


def read_episodes(root: str | Path, mapping: Mapping, spec: ActionSpec | None = None,
                  image_size: tuple[int, int] | None = None) -> tuple[list[Episode], str, int]:
    """The dataset's episodes as qt Episodes; also the proprio layout and object-pose size."""
    from qt_data_logger.images import resize_rgb

    root = Path(root)
    spec = spec or ActionSpec.default()
    info = F.read_info(root)
    tasks = F.read_tasks(root)
    episodes = F.read_episodes(root)
    _resolve(mapping, info, episodes, root)
    index_of = _action_map(mapping, info, spec, root)
    layout = ""
    if mapping.proprio:
        dim = int(info["features"][mapping.proprio]["shape"][0])
        layout = mapping.proprio_layout or layouts.layout_for_dim(dim)
        try:
            expected = layouts.layout(layout).dim
        except ValueError as exc:
            raise ImportError_(f"mapping field proprio.layout: {exc}") from None
        if expected != dim:
            raise ImportError_(f"mapping field proprio.layout: {layout} has {expected} values, feature "
                               f"{mapping.proprio!r} has {dim}")
    image_feature = info["features"][mapping.image]
    size = mapping.image_size or image_size or tuple(image_feature["shape"][:2])
    data: dict[str, list[Any]] = {}
    for file in sorted((root / "data").glob("*/*.parquet")):
        for key, values in F.read_table(file).items():
            data.setdefault(key, []).extend(values)
    if "index" not in data or "episode_index" not in data:
        raise ImportError_(f"{root}/data: no frames with index and episode_index columns")
    order = np.argsort(np.asarray(data["index"]), kind="stable")
    wanted = [mapping.action, "episode_index", "task_index", mapping.proprio, mapping.object_poses,
              mapping.success_field if mapping.success_from in ("field", "reward") else ""]
    columns = {k: np.asarray([data[k][i] for i in order]) for k in wanted if k}
    videos = _Videos(root, info, mapping.image) if image_feature["dtype"] == "video" else None
    out: list[Episode] = []
    for position, episode_index in enumerate(episodes["episode_index"]):
        row = {k: v[position] for k, v in episodes.items()}
        rows = np.flatnonzero(columns["episode_index"] == episode_index)
        if rows.size == 0:
            raise ImportError_(f"{root}/data: episode {episode_index} has no frames")
        per = {k: v[rows] for k, v in columns.items()}
        values = per[mapping.action].astype(np.float64)[:, index_of]
        if mapping.scale is not None:
            values = values * mapping.scale
        if mapping.offset is not None:
            values = values + mapping.offset
        bad = ~np.isfinite(values)
        if bad.any():
            t, d = np.argwhere(bad)[0]
            raise ImportError_(f"{root}: episode {episode_index} frame {t}: feature {mapping.action!r} "
                               f"({spec.names[d]}) is not finite")
        span = spec.high - spec.low
        outside = (values < spec.low - 1e-5 * span) | (values > spec.high + 1e-5 * span)
        if outside.any() and not mapping.clip:
            t, d = np.argwhere(outside)[0]
            raise ImportError_(f"{root}: episode {episode_index} frame {t}: feature {mapping.action!r} value "
                               f"{values[t, d]:.6g} is outside [{spec.low[d]:g}, {spec.high[d]:g}] of {spec.names[d]}; "
                               "fix action.scale/offset in the mapping, or set action.out_of_range: clip")
        values = np.clip(values, spec.low, spec.high)
        if videos is not None:
            images = videos.episode(row, len(rows))
        else:
            images = _image_column([data[mapping.image][order[i]] for i in rows], root, mapping.image)
        if tuple(images.shape[1:3]) != tuple(size):
            images = np.stack([resize_rgb(im, int(size[0]), int(size[1])) for im in images])
        task = tasks.get(int(per["task_index"][0]), "") if "task_index" in per else ""
        if not task:
            raise ImportError_(f"{root}: episode {episode_index}: no task (instruction) in meta/tasks.parquet")
        digest = str(row.get(F.QT_BAG_DIGEST) or "") or hashlib.sha256(json.dumps(
            {"root": root.name, "row": {k: str(v) for k, v in row.items()}}, sort_keys=True).encode()).hexdigest()[:32]
        out.append(Episode(
            images=images.astype(np.uint8), bins=spec.values_to_bins(values).astype(np.uint16), instruction=task,
            outcome=_outcome(mapping, row, per, root),
            proprio=per[mapping.proprio].astype(np.float32).reshape(len(rows), -1) if mapping.proprio else None,
            object_poses=(per[mapping.object_poses].astype(np.float32).reshape(len(rows), -1)
                          if mapping.object_poses else None),
            episode_id=str(row.get(F.QT_EPISODE_ID) or f"lerobot-{episode_index}"),
            task_id=str(row.get(F.QT_TASK_ID) or ""), source_bag=f"{root.resolve()}#episode={episode_index}",
            bag_digest=digest, extra={"imported_from": "lerobot", "control_rate_hz": float(info["fps"])},
        ))
    return out, layout or "none", int(info["features"][mapping.object_poses]["shape"][0]) if mapping.object_poses else 0


def import_dataset(root: str | Path, output: str | Path, mapping: Mapping, overwrite: bool = False,
                   image_size: tuple[int, int] | None = None) -> Any:
    """Write the qt dataset (atomically, appending unless ``overwrite``); returns it."""
    spec = ActionSpec.default()
    episodes, layout, object_dim = read_episodes(root, mapping, spec, image_size)
    shape = (*episodes[0].images.shape[1:3], 3)
    with DatasetWriter(output, spec, shape, layouts.layout(layout).dim, mapping.gamma, append=not overwrite,
                       created_by="qt dataset import-lerobot", proprio_layout=layout,
                       object_pose_dim=object_dim) as writer:
        for episode in episodes:
            if not writer.has_bag(episode.bag_digest):
                writer.add_episode(episode)
        return writer.commit()


def main(args: Any) -> int:
    """``qt dataset import-lerobot`` (dataset_cli parses the arguments)."""
    import sys

    from qt_common.dataset import DatasetError

    try:
        mapping = Mapping.load(args.mapping or None)
        size = tuple(int(v) for v in args.image_size.lower().split("x")) if args.image_size else None
        if size is not None and len(size) == 1:
            size = size * 2
        dataset = import_dataset(args.source, args.output, mapping, overwrite=args.overwrite, image_size=size)
    except (ImportError_, F.LeRobotFormatError, DatasetError) as exc:
        print(f"qt dataset import-lerobot: error: {exc}", file=sys.stderr)
        print("qt dataset import-lerobot: nothing written", file=sys.stderr)
        return 1
    s = dataset.summary()
    print(f"dataset {s['path']}: {s['episodes']} episodes, {s['frames']} frames, success rate "
          f"{s['success_rate']:.0%}, {len(s['per_instruction'])} instruction(s), digest {s['digest']}")
    return 0

"""The ``qt`` command: one entry point whose verbs live in the packages that own them.

Each verb is imported only when it is used, so ``qt run`` never loads torch and ``qt train``
never loads rclpy. A package adds a verb by adding one line to ``VERBS``.
"""

from __future__ import annotations

import importlib
import sys

# verb -> (module, function, one-line help). The function takes the remaining argv list and
# returns a process exit code.
VERBS: dict[str, tuple[str, str, str]] = {
    "train": ("qt_trainer.train", "main", "train a Q-Transformer (or BC baseline) on a dataset"),
    "q-diagnostics": ("qt_trainer.q_diagnostics", "main", "Q along episodes: data, greedy, unseen bins vs MC return"),
    "export": ("qt_trainer.export", "main", "checkpoint -> models/<name>/policy.onnx + policy.json"),
    "run": ("qt_policy_node.run", "main", "policy node (+ --sim, --record) in one process, like run.launch.py"),
    "convert": ("qt_data_logger.convert", "main", "episode bags -> training dataset (validated, parallel)"),
    "dataset": ("qt_data_logger.dataset_cli", "main", "dataset info, or a contact sheet PNG of an episode"),
    "bags": ("qt_data_logger.bags_cli", "main", "check / repair / quarantine / label episode bags"),
    "sim-sheet": ("qt_sim.sheet", "main", "contact sheet PNG: one scripted-expert episode per sim task"),
    "collect": ("qt_eval.collect", "main", "record labelled scripted-expert episodes: sim + expert + recorder nodes"),
    "eval": ("qt_eval.evaluate", "main", "success rate per task of a policy on the sim (policy node over ROS)"),
    "demo": ("qt_eval.demo", "main", "the main job: sim + policy node + shipped model, a short evaluation"),
}


def _usage() -> str:
    lines = ["usage: qt VERB [options]   (qt VERB --help for a verb's options)", "", "verbs:"]
    width = max((len(v) for v in VERBS), default=4)
    for verb, (_, _, text) in sorted(VERBS.items()):
        lines.append(f"  {verb:<{width}}  {text}")
    if not VERBS:
        lines.append("  (none installed yet)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    verb, rest = args[0], args[1:]
    if verb not in VERBS:
        print(f"qt: unknown verb {verb!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function_name, _ = VERBS[verb]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        print(
            f"qt {verb}: cannot import {module_name} ({exc}). Did you run scripts/setup.sh "
            "and source env.sh?",
            file=sys.stderr,
        )
        return 2
    return int(getattr(module, function_name)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""The ``qt`` command: one entry point whose verbs live in the packages that own them.

Each verb is imported only when it is used, so ``qt run`` never loads torch and ``qt train``
never loads rclpy. A package adds a verb by adding one line to ``VERBS``.
"""

from __future__ import annotations

import importlib
import sys

# verb -> (module, function, one-line help). The function takes the remaining argv list and
# returns a process exit code.
VERBS: dict[str, tuple[str, str, str]] = {}


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

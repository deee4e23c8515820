"""``qt bags check|repair|quarantine|label``: deal with bags the recorder could not finalise.

    qt bags check DIR...                 state of every bag; exit 1 if any needs attention
    qt bags repair DIR... [--outcome O]  rebuild interrupted bags from what survived
    qt bags quarantine DIR...            move interrupted/corrupt bags to DIR/_quarantine
    qt bags label BAG --outcome O        label a finalised but unlabelled bag

``qt convert`` refuses every bag that is not ``ok``, so nothing unfinished ever becomes
training data; these commands are how a person decides what happens to it instead. Entries of a
folder that are not bag directories (bag_status.scan_bags) are listed as strays and left alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qt_data_logger import bag_format as bf
from qt_data_logger.bag_repair import RepairError, label, quarantine, repair
from qt_data_logger.bag_status import BagStatus, inspect_bag, scan_bags

NEEDS_ATTENTION = ("unlabelled", "incomplete", "interrupted", "corrupt", "not_a_bag")


def _statuses(paths: list[str]) -> list[BagStatus]:
    """The state of every bag in ``paths``; each stray entry is named on stdout and left alone."""
    scan = scan_bags(list(paths))
    for stray in scan.strays:
        print(f"stray: {stray} is not a bag directory (no {bf.METADATA_FILE} or {bf.RECORDING_MARKER}); left alone")
    return [inspect_bag(p) for p in scan.bags]


def _check(args: argparse.Namespace) -> int:
    statuses = _statuses(args.dirs)
    if not statuses:
        print("no bags found")
        return 0
    print(f"{'state':12s} {'outcome':12s} {'messages':>9s} {'seconds':>8s} {'MB':>8s}  bag / detail")
    for s in statuses:
        outcome = s.custom.get(bf.KEY_OUTCOME, "")
        print(
            f"{s.state:12s} {outcome:12s} {s.message_count:9d} {s.duration_s:8.1f} {s.size_bytes / 1e6:8.1f}  "
            f"{s.path}" + (f"\n{'':54s}{s.detail}" if s.detail and s.state != "ok" else "")
        )
    bad = [s for s in statuses if s.state in NEEDS_ATTENTION]
    counts = {state: sum(1 for s in statuses if s.state == state) for state in sorted({s.state for s in statuses})}
    print("summary: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
    if bad:
        print("fix: `qt bags repair DIR` (interrupted), `qt bags quarantine DIR`, `qt bags label BAG --outcome ...`")
    return 1 if bad else 0


def _repair(args: argparse.Namespace) -> int:
    failed = 0
    targets = [s for s in _statuses(args.dirs) if s.state in ("interrupted", "corrupt")]
    if not targets:
        print("nothing to repair")
    for status in targets:
        try:
            result = repair(status.path, args.outcome)
        except (RepairError, OSError) as exc:
            failed += 1
            print(f"not repaired: {exc}", file=sys.stderr)
            continue
        tail = f", truncated file(s) {result.truncated}" if result.truncated else ""
        print(
            f"repaired {result.path}: {result.messages} messages recovered{tail}; outcome {result.outcome}; "
            f"original kept in {result.original}"
        )
    return 1 if failed else 0


def _quarantine(args: argparse.Namespace) -> int:
    states = {"interrupted", "corrupt"} | ({"unlabelled"} if args.unlabelled else set())
    moved = 0
    failed = 0
    for status in _statuses(args.dirs):
        if status.state in states:
            try:
                target = quarantine(status.path)
            except (RepairError, OSError) as exc:
                failed += 1
                print(f"not quarantined: {exc}", file=sys.stderr)
                continue
            moved += 1
            print(f"quarantined {status.path} ({status.state}: {status.detail}) -> {target}")
    print(f"{moved} bag(s) quarantined")
    return 1 if failed else 0


def _label(args: argparse.Namespace) -> int:
    try:
        label(Path(args.bag), args.outcome)
    except RepairError as exc:
        print(f"qt bags label: error: {exc}", file=sys.stderr)
        return 1
    print(f"labelled {args.bag}: outcome {args.outcome}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="qt bags", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="state of every bag (exit 1 if any needs attention)")
    check.add_argument("dirs", nargs="+", help="bags or folders of bags")
    check.set_defaults(run=_check)
    fix = sub.add_parser("repair", help="rebuild interrupted bags from what survived (originals kept)")
    fix.add_argument("dirs", nargs="+")
    fix.add_argument("--outcome", choices=bf.TRAINABLE_OUTCOMES, default="", help="label the repaired episode")
    fix.set_defaults(run=_repair)
    move = sub.add_parser("quarantine", help="move interrupted/corrupt bags into <folder>/_quarantine")
    move.add_argument("dirs", nargs="+")
    move.add_argument("--unlabelled", action="store_true", help="also move finalised bags without an outcome")
    move.set_defaults(run=_quarantine)
    tag = sub.add_parser("label", help="set the outcome of a finalised, unlabelled bag")
    tag.add_argument("bag")
    tag.add_argument("--outcome", choices=bf.TRAINABLE_OUTCOMES, required=True)
    tag.set_defaults(run=_label)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())

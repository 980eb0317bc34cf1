"""The `report` subcommand: parse, read InfluxDB, print the figures and the JSON line."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

EXIT_UNAVAILABLE = 3
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration_s(text: str) -> float:
    """`7d`, `12h`, `30m`, `90s`, `2w` or plain seconds -> seconds (argparse type)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive duration such as 7d, 12h, 30m or 3600"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def cmd_report(args: argparse.Namespace) -> int:
    from broker.cli import _settings
    from broker.metrics.influx import InfluxSource
    from broker.metrics.view import SourceError
    from broker.report.figures import build_report
    from broker.report.read import join, read_log
    from broker.report.text import render

    settings = _settings(args)
    source = InfluxSource.of(settings.metrics)
    try:
        log = read_log(source, args.since, args.margin, args.timeout, args.max_mb * 1024 * 1024)
    except SourceError as exc:
        print(f"tpv-broker: report: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    report = build_report(log, args.since)
    print(render(report))
    if args.plot:
        try:
            from broker.report.plots import plot_report
        except ImportError:
            print(
                "tpv-broker: report: --plot needs matplotlib (pip install matplotlib)",
                file=sys.stderr,
            )
            return 2
        try:
            paths = plot_report(join(log.decisions, log.outcomes)[0], Path(args.plot))
        except OSError as exc:
            print(
                f"tpv-broker: report: cannot write plots to {args.plot}: {exc.strerror}",
                file=sys.stderr,
            )
            return 2
        report["plots"] = [str(p) for p in paths]
        print("\nPlots: " + ", ".join(report["plots"]))
    print(json.dumps(report, sort_keys=True))
    return 0


def add_parser(sub) -> None:
    rep = sub.add_parser(
        "report",
        help="prediction error, calibration and choices from the decision log and outcomes",
        description="Read routing_decision and job_attempt_outcome from InfluxDB "
        "(metrics.influxdb of the config) and print how good the broker's predictions were. "
        "JSON on the last line.",
    )
    rep.add_argument("--config", default=argparse.SUPPRESS, help="YAML config")
    rep.add_argument(
        "--since",
        type=duration_s,
        default=7 * 86400.0,
        help="window of attempt outcomes and decisions (default 7d)",
    )
    rep.add_argument(
        "--margin",
        type=duration_s,
        default=2 * 86400.0,
        help="decisions are read this much further back, so earlier attempts of "
        "a job count (default 2d)",
    )
    rep.add_argument(
        "--timeout",
        type=duration_s,
        default=30.0,
        help="deadline of the InfluxDB query (default 30s)",
    )
    rep.add_argument(
        "--max-mb",
        type=int,
        default=512,
        help="largest InfluxDB answer read, in MiB (default 512; a shorter --since needs less)",
    )
    rep.add_argument("--plot", metavar="DIR", help="also write PNG figures into DIR")
    rep.set_defaults(func=cmd_report)

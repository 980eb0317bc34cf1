"""What `tpv-broker compat-experiment` prints and draws: a table per level with the JSON report
as its last line, and optionally one PNG. Apart from the experiment (`compat_experiment`)
because this is presentation: it reads only the report dictionary `run_experiment` returns,
and matplotlib is imported only when a plot is asked for (the dev extra).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from broker.success.compat_experiment import run_experiment
from broker.success.eval import DatasetError


def format_report(report: dict[str, Any]) -> str:
    """A table per level (the subsystem added, the figures), then the JSON as the last line."""
    lines = [
        f"{report['specs']} jobs (successful builds of {report['builds']}) of "
        f"{report['packages']} packages, {report['clusters']} "
        f"clusters, {report['features']} features in {len(report['subsystem_order'])} subsystems",
        f"{'level':>5} {'added':<18} {'unsched':>8} {'mean P':>7} {'same@0':>7} "
        f"{'score':>6} {'ref P':>6} {'pooled':>7} {'assigned':>8}",
    ]
    for lv in report["levels"]:
        added = lv["subsystems"][-1] if lv["subsystems"] else "-"
        lines.append(
            f"{lv['level']:>5} {added:<18} {lv['unschedulable_fraction']:>8.3f} "
            f"{_fmt(lv['mean_p_success'])} {_fmt(lv['same_specs_level0_mean_p_success'])} "
            f"{lv['score_fraction']:>6.3f} {_fmt(lv['reference_mean_p_success'], 6)} "
            f"{_fmt(lv['pooled_mean_p_success'])} {lv['assigned']:>8}"
        )
    for name, why in report["skipped"].items():
        lines.append(f"skipped {name}: {why}")
    lines.append(json.dumps(report, separators=(",", ":")))
    return "\n".join(lines)


def _fmt(value: float | None, width: int = 7) -> str:
    return f"{value:>{width}.3f}" if value is not None and not math.isnan(value) else " " * width


def plot(report: dict[str, Any], out: Path) -> Path:
    """Mean P(success) (ours, reference, same specs at level 0), score fraction and
    unschedulable fraction against the level, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lv = report["levels"]
    x = [v["level"] for v in lv]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    series = (
        ("mean_p_success", "mean P(success), assigned jobs (ours)", "-"),
        ("reference_mean_p_success", "mean P(success), assigned jobs (CategoricalNB)", "--"),
        ("same_specs_level0_mean_p_success", "the same jobs at level 0 (ours)", ":"),
        ("score_fraction", "sum of P / all jobs (ours)", "-."),
        ("unschedulable_fraction", "unschedulable fraction", "-"),
    )
    for key, label, style in series:
        y = [np.nan if v[key] is None else v[key] for v in lv]
        ax.plot(x, y, style, label=label)
    ax.set_xlabel("level (subsystems in the jobspecs)")
    ax.set_ylim(0, 1)
    ax.set_title(
        f"compatibility metadata: {report['specs']} jobs, {report['clusters']} clusters, "
        f"seed {report['seed']}"
    )
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def cmd_compat_experiment(args) -> int:
    """The CLI subcommand: the table and the JSON line; 2 on unusable input."""
    started = time.monotonic()
    try:
        report = run_experiment(Path(args.dir), clusters=args.clusters, seed=args.seed)
    except (DatasetError, OSError) as exc:
        print(f"tpv-broker: {exc}", file=sys.stderr)
        return 2
    report["seconds"] = round(time.monotonic() - started, 1)
    if args.plot:
        try:
            path = plot(report, Path(args.plot))
        except ImportError:
            print("tpv-broker: --plot needs matplotlib (the dev extra)", file=sys.stderr)
            return 2
        print(f"wrote {path}")
    print(format_report(report))
    return 0

"""The report as text for a person; the same figures as the JSON line that follows it."""

from __future__ import annotations

from typing import Any

from broker.report.figures import OVERALL, TERMS


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _share(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _errors(rows: list[tuple[str, dict[str, Any]]], term: str) -> list[str]:
    out = [f"  {term}: {'destination':<28} {'n':>5} {'MAE s':>10} {'bias s':>10} {'within 2x':>9}"]
    for name, section in rows:
        e = section["errors"][term]
        out.append(
            f"  {'':{len(term) + 1}} {name:<28} {e['n']:>5} {_s(e['median_abs_error_s']):>10} "
            f"{_s(e['bias_s']):>10} {_share(e['within_2x']):>9}"
        )
    return out


def render(report: dict[str, Any]) -> str:
    rows = [(OVERALL, report[OVERALL]), *report["destinations"].items()]
    lines = [
        f"Decisions in the window: {report['decisions']}; attempt outcomes: {report['outcomes']}"
        f" (joined {report['attempts_joined']}, without a decision "
        f"{report['outcomes_without_decision']}, at a destination that was not a candidate "
        f"{report['attempts_not_a_candidate']})",
        "",
        "Prediction error (median absolute error, bias = median predicted - actual):",
    ]
    for term in TERMS:
        lines += _errors(rows, term)
    cal = report[OVERALL]["calibration"]
    lines += ["", f"Calibration of P(success) ({cal['n']} attempts, Brier {cal['brier']}):"]
    lines.append(f"  {'bin':<12} {'count':>6} {'mean predicted':>15} {'observed':>9}")
    for b in cal["bins"]:
        lo, hi = b["bin"]
        lines.append(
            f"  {lo:.1f}-{hi:.1f}      {b['count']:>6} {b['mean_predicted']:>15.3f} "
            f"{b['observed_rate']:>9.3f}"
        )
    lines += ["", "Broker's first choice differed from the destination used:"]
    for name, section in rows:
        f = section["first_choice_differed"]
        lines.append(f"  {name:<28} {f['differed']:>5} of {f['decisions']:<5} {_share(f['share'])}")
    for mode, f in report["by_mode"].items():
        lines.append(
            f"  mode {mode:<23} {f['differed']:>5} of {f['decisions']:<5} {_share(f['share'])}"
        )
    lines += ["", "Turnaround (queue + run), predicted vs actual, median s:"]
    for name, section in rows:
        for which, t in section["turnaround"].items():
            if t["n"]:
                lines.append(
                    f"  {name:<28} {which.replace('_', ' '):<20} n={t['n']:<5} predicted "
                    f"{_s(t['median_predicted_s'])} actual {_s(t['median_actual_s'])}"
                )
    return "\n".join(lines)

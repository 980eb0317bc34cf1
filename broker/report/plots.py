"""PNG figures of the report: predicted vs actual per term (log axes), calibration curve."""

from __future__ import annotations

from pathlib import Path

from broker.report.figures import BINS, FLOOR_S, TERMS, calibration
from broker.report.read import Pair


def plot_report(pairs: list[Pair], out_dir: Path) -> list[Path]:
    """Write predicted-vs-actual.png and calibration.png into `out_dir`; returns the paths.
    Times below FLOOR_S are drawn at FLOOR_S (a log axis has no 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    usable = [p for p in pairs if p.candidate is not None]
    destinations = sorted({p.outcome.destination_id for p in usable})
    fig, axes = plt.subplots(1, len(TERMS), figsize=(5 * len(TERMS), 4.8), squeeze=False)
    for ax, (term, (pred, act)) in zip(axes[0], TERMS.items(), strict=True):
        values = [max(v, FLOOR_S) for p in usable for v in (pred(p), act(p))] or [FLOOR_S, 10.0]
        lo, hi = min(values) / 1.5, max(values) * 1.5
        for dest in destinations:
            group = [p for p in usable if p.outcome.destination_id == dest]
            ax.scatter(
                [max(act(p), FLOOR_S) for p in group],
                [max(pred(p), FLOOR_S) for p in group],
                s=16,
                alpha=0.7,
                label=dest,
            )
        ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="predicted = actual")
        ax.fill_between([lo, hi], [lo / 2, hi / 2], [lo * 2, hi * 2], color="grey", alpha=0.15)
        ax.set(
            xscale="log",
            yscale="log",
            xlim=(lo, hi),
            ylim=(lo, hi),
            xlabel=f"actual {term} (s)",
            ylabel=f"predicted {term} (s)",
            title=f"{term}: {len(usable)} attempts (band: within 2x)",
        )
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    scatter = out_dir / "predicted-vs-actual.png"
    fig.savefig(scatter, dpi=110)
    plt.close(fig)

    cal = calibration(pairs, BINS)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="black", lw=1, label="perfectly calibrated")
    if cal["bins"]:
        xs = [b["mean_predicted"] for b in cal["bins"]]
        ys = [b["observed_rate"] for b in cal["bins"]]
        ax.plot(xs, ys, marker="o", label="observed")
        for b in cal["bins"]:
            ax.annotate(
                str(b["count"]),
                (b["mean_predicted"], b["observed_rate"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
            )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        xlabel="predicted P(success)",
        ylabel="observed success rate",
        title=f"Calibration: {cal['n']} attempts, Brier {cal['brier']}",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    curve = out_dir / "calibration.png"
    fig.savefig(curve, dpi=110)
    plt.close(fig)
    return [scatter, curve]

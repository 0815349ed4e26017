"""Ablation tables (Tables 3-8): per-arm statistics over paired seeds, a verdict per row, the table
as CSV and markdown, and a figure.

Seed ``s`` gives every arm of a table the same data order, augmentation stream and, where shapes
agree, initialization (:func:`yolov7lib.pipeline.train_config`), so the arms differ only in what the
table ablates and each arm is compared with the table's base row seed by seed:

* per metric: the mean over seeds (%) and the half-width of its 95 % confidence interval (Student t);
* ``AP_diff``: the mean paired difference to the base row, its 95 % interval, and ``AP_p``, the
  two-sided p-value of a paired t-test (``scipy.stats.ttest_rel``);
* ``verdict``: ``base``, or whether our difference has the sign of the paper's difference to its own
  base (``paper's direction`` / ``opposite``) and whether it is significant at 5 % (``untested``
  below two pairs; ``no difference`` when ours is exactly 0).

Each test is read alone (no correction for the several rows of a table), and with 3 seeds "not
significant" is no evidence of no effect.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

METRIC_COLUMNS = {"AP": "ap_val", "AP50": "ap50_val", "AP75": "ap75_val", "APs": "aps_val", "APm": "apm_val",
                  "APl": "apl_val"}
VERDICTS = ("base", "paper's direction, significant", "paper's direction, not significant",
            "opposite, significant", "opposite, not significant")
ALPHA = 0.05
STATISTICS = ("mean over seeds ± half-width of its 95 % interval (Student t); Δ: paired difference to the base "
              "row (same seeds), its 95 % interval and the two-sided p of a paired t-test; verdict at 5 %")


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the 95 % Student-t interval); the half-width is NaN below two values."""
    from scipy import stats

    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    if len(x) == 1:
        return float(x[0]), math.nan
    return float(x.mean()), float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def paired_p(differences: Sequence[float]) -> float:
    """Two-sided p of the paired t-test on per-seed differences (NaN below two pairs). Differences
    without spread (up to float rounding) give 1 when all are zero and 0 otherwise (the t statistic
    is then 0 or infinite)."""
    from scipy import stats

    d = np.asarray([v for v in differences if not math.isnan(v)], dtype=float)
    if len(d) < 2:
        return math.nan
    if np.ptp(d) <= 1e-9 * max(1.0, float(np.abs(d).max())):  # no spread, up to float rounding
        return 1.0 if np.allclose(d, 0.0, atol=1e-12) else 0.0
    return float(stats.ttest_1samp(d, 0.0).pvalue)  # = ttest_rel(arm, base)


def verdict(diff: float, p: float, paper_diff: float) -> str:
    """One of :data:`VERDICTS` (after ``base``); ``n/a`` where the paper shows no difference, ``no
    difference`` where ours is exactly 0, and ``untested`` in place of the test below two pairs."""
    if math.isnan(paper_diff) or paper_diff == 0 or math.isnan(diff):
        return "n/a"
    if diff == 0:
        return "no difference"
    direction = "paper's direction" if math.copysign(1, diff) == math.copysign(1, paper_diff) else "opposite"
    test = "untested" if math.isnan(p) else "significant" if p < ALPHA else "not significant"
    return f"{direction}, {test}"


def summarize(rows: Sequence[Mapping[str, Any]], paper: Sequence[Mapping[str, str]], labels: Mapping[str, str],
              metrics: Sequence[str] = ("AP", "AP50", "AP75"), status: str = "reduced-scale") -> pd.DataFrame:
    """One row per arm, in the order the arms ran (the first is the base): ``seeds`` (runs with an
    AP) and ``AP_by_seed`` (%, in seed order; NaN where a run has none), per metric the mean (%),
    ``_ci95`` and the paper's value, then the paired AP difference to the base with its interval,
    ``AP_diff_by_seed``, the number of pairs (seeds both have) and p-value, the paper's difference,
    and the verdict. ``rows`` hold one run each
    (``label``, ``seed`` and metrics in [0, 1]; pycocotools' -1 for an empty area range counts as
    missing); ``labels`` maps arm labels to the paper's row names."""
    runs = pd.DataFrame(list(rows))
    for m in metrics:
        runs[m] = 100 * runs[m].where(runs[m] >= 0) if m in runs else math.nan
    arms = list(dict.fromkeys(runs["label"]))
    wide = {m: runs.pivot_table(index="seed", columns="label", values=m, aggfunc="first", dropna=False)
            .reindex(columns=arms) for m in metrics}
    theirs = {p["model"]: p for p in paper}
    paper_value = {(label, m): float(theirs.get(labels.get(label, label), {}).get(METRIC_COLUMNS[m]) or "nan")
                   for label in arms for m in metrics}
    base = arms[0]
    out = []
    for label in arms:
        row: dict[str, Any] = {"row": label, "paper_row": labels.get(label, label),
                               "seeds": int(wide["AP"][label].notna().sum()),
                               "AP_by_seed": tuple(wide["AP"][label].tolist())}
        for m in metrics:
            row[m], row[f"{m}_ci95"] = mean_ci(wide[m][label].tolist())
            row[f"{m}_paper"] = paper_value[(label, m)]
        diffs = (wide["AP"][label] - wide["AP"][base]).tolist()
        row["AP_diff"], row["AP_diff_ci95"] = mean_ci(diffs) if label != base else (0.0, 0.0)
        row["AP_diff_by_seed"], row["AP_pairs"] = tuple(diffs), sum(not math.isnan(d) for d in diffs)
        row["AP_p"] = paired_p(diffs) if label != base else math.nan
        row["AP_paper_diff"] = paper_value[(label, "AP")] - paper_value[(base, "AP")]
        row["verdict"] = "base" if label == base else verdict(row["AP_diff"], row["AP_p"], row["AP_paper_diff"])
        row["status"] = status
        out.append(row)
    return pd.DataFrame(out)


def verdict_counts(summary: pd.DataFrame) -> dict[str, int]:
    """How many rows reach each verdict (the README's results section)."""
    counts = summary["verdict"].value_counts()
    return {v: int(counts[v]) for v in counts.index if v != "base"}


def _number(value: float, digits: int = 1) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _paper(value: float, sign: str = "") -> str:
    """A paper value at its own precision (Tables 4 and 5 print hundredths): 2 decimals, the second
    dropped when it is 0."""
    if value is None or math.isnan(value):
        return "–"
    text = f"{value:{sign}.2f}"
    return text[:-1] if text.endswith("0") else text


def _with_ci(mean: float, half: float) -> str:
    return _number(mean) if math.isnan(half) else f"{_number(mean)} ± {_number(half)}"


def markdown(summary: pd.DataFrame, title: str, setup: str = "", metrics: Sequence[str] = ("AP", "AP50", "AP75"),
             extra: Sequence[str] = ()) -> str:
    """The table as markdown: ours ± CI beside the paper per metric, then the paired AP difference
    beside the paper's, its p-value and the verdict."""
    head = ["row", *extra, "seeds", *(f"{m} ours / paper" for m in metrics), "AP Δ ours (95 % CI) / paper", "p",
            "verdict", "status"]
    lines = [f"### {title}", ""]
    if setup:
        lines += [setup, ""]
    lines += [f"Statistics: {STATISTICS}.", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary.to_dict("records"):
        cells = [r["row"], *(str(r.get(e, "")) for e in extra), str(r["seeds"])]
        cells += [f"{_with_ci(r[m], r[f'{m}_ci95'])} / {_paper(r[f'{m}_paper'])}" for m in metrics]
        if r["verdict"] == "base":
            cells += ["–", "–"]
        else:
            diff = f"{r['AP_diff']:+.2f}" + ("" if math.isnan(r["AP_diff_ci95"]) else f" (± {r['AP_diff_ci95']:.2f})")
            if r["AP_pairs"] != r["seeds"]:
                diff += f" over {r['AP_pairs']} pair(s)"
            cells += [f"{diff} / {_paper(r['AP_paper_diff'], '+')}", _number(r["AP_p"], 3)]
        cells += [r["verdict"], r["status"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(summary: pd.DataFrame, title: str):
    """Two panels on shared scales: per arm, our AP (95 % interval, and each seed's) beside the paper's;
    and what the verdicts test, our paired difference to the base (95 % interval, and each seed's)
    beside the paper's difference."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(7.0, 2.0 * len(summary) + 2), 3.8), layout="constrained")
    x = np.arange(len(summary))
    panels = fig.subplots(1, 2)
    columns = (("AP", "AP_ci95", "AP_paper", "AP (%)"),
               ("AP_diff", "AP_diff_ci95", "AP_paper_diff", "AP Δ to the base"))
    for ax, (ours, ci, paper, label) in zip(panels, columns):
        seeds = [(xi - 0.25, v) for xi, values in zip(x, summary[f"{ours}_by_seed"]) for v in values]
        ax.plot(*zip(*seeds), "o", mfc="none", ms=4, color="C0", alpha=0.6, label="ours, each seed")
        ax.errorbar(x - 0.1, summary[ours], yerr=summary[ci].fillna(0.0), fmt="o", capsize=4, color="C0",
                    label="ours (95 % CI)")
        ax.plot(x + 0.1, summary[paper], "s", color="C1", label="paper")
        ax.set_ylabel(label)
        ax.set_xticks(x, summary["row"], rotation=20, ha="right", fontsize=8)
    panels[1].axhline(0.0, color="grey", lw=0.8)
    for i, v in enumerate(summary["verdict"]):
        if v not in ("base", "n/a"):
            panels[1].annotate(v.replace(", ", "\n"), (x[i], summary["AP_diff"].iloc[i]), fontsize=6, ha="center",
                               xytext=(0, 8), textcoords="offset points")
    fig.suptitle(title, fontsize=9)
    handles, names = panels[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=3, fontsize=8)
    return fig


def write_table(summary: pd.DataFrame, stem: str | os.PathLike, title: str, setup: str = "",
                metrics: Sequence[str] = ("AP", "AP50", "AP75"), extra: Sequence[str] = ()) -> list[Path]:
    """``stem.csv`` (every column), ``stem.md``, ``stem.png`` and ``metrics.json`` beside them; returns
    the paths written."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".csv"), stem.with_suffix(".md"), stem.with_suffix(".png"),
             stem.parent / "metrics.json"]
    by_seed = {c: summary[c].map(lambda values: " ".join(f"{v:.4g}" for v in values))
               for c in ("AP_by_seed", "AP_diff_by_seed")}  # a cell: the seeds' values, space-separated
    summary.assign(**by_seed).to_csv(paths[0], index=False, float_format="%.4g")
    paths[1].write_text(markdown(summary, title, setup, metrics, extra))
    figure(summary, title).savefig(paths[2], dpi=100)
    numbers = [*metrics, "AP_diff", "AP_diff_ci95", "AP_p"]
    means = {r["row"]: {m: None if math.isnan(r[m]) else round(r[m], 4 if m == "AP_p" else 3) for m in numbers}
             for r in summary.to_dict("records")}
    paths[3].write_text(json.dumps(means, indent=1) + "\n")
    return paths

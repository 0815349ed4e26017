"""``python -m yolov7lib.models --table``: parameters and GFLOPs of every model, beside the paper.

``--out DIR`` also writes ``DIR/model_table.csv`` and ``DIR/model_table.md`` (the paper's
Table 2 / 9 architecture columns next to ours).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from ..complexity import TABLE_COLUMNS, model_table
from ..console import HelpFormatter, run
from .build import VARIANTS


def markdown(rows: list[dict]) -> str:
    """The table as markdown: ours (fused params, paper-rule GFLOPs) against the paper's figures."""
    lines = [
        "| model | form | params | params fused | GFLOPs (thop today, unfused) "
        "| GFLOPs (paper rules, fused) | paper #Param | paper FLOPs | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ours_m, ours_g = r["params_fused"] / 1e6, r["gflops_paper_rules"]
        published = r["paper_params"] is not None
        match = published and (f"{ours_m:.1f}" == f"{r['paper_params']:.1f}"
                               and abs(ours_g - r["paper_gflops"]) <= 0.2)
        ablation = VARIANTS[r["name"]].ablation
        if not published:
            note = f"{ablation}: the paper prints no parameter or FLOP counts"
        elif match and ablation:
            note = f"{ablation}, inferred architecture: within {_residual(r):.2f} %"
        elif match:
            note = "matches the paper"
        elif r["name"] == "yolov7-d6":
            note = ("the paper's 154.7M counts the unfused training model (aux head included): "
                    "see the training row's params")
        elif ablation:
            note = f"{ablation}, inferred architecture: within {_residual(r):.2f} %"
        elif r["form"] == "training":
            note = "training form (the paper reports the deploy model)"
        else:
            note = "differs"
        paper_p = f"{r['paper_params']}M" if published else "–"
        paper_g = f"{r['paper_gflops']}G" if published else "–"
        lines.append(
            f"| {r['name']} | {r['form']} | {r['params']:,} | {r['params_fused']:,} | {r['gflops']:.1f} "
            f"| {ours_g:.1f} | {paper_p} | {paper_g} | {note} |"
        )
    return "\n".join(lines) + "\n"


def _residual(r: dict) -> float:
    """Largest relative difference (%) of fused params / paper-rule GFLOPs from the paper."""
    return 100 * max(abs(r["params_fused"] / 1e6 / r["paper_params"] - 1),
                     abs(r["gflops_paper_rules"] / r["paper_gflops"] - 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yolov7lib.models", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--table", action="store_true", help="print the complexity table as CSV")
    parser.add_argument("--models", nargs="*", choices=list(VARIANTS), metavar="MODEL",
                        help="only these models; any of " + ", ".join(VARIANTS))
    parser.add_argument("--all", action="store_true", help="also the ablation variants (Tables 3, 4, 5, 8)")
    parser.add_argument("--out", type=Path, help="also write model_table.csv/.md into this folder")
    args = parser.parse_args(argv)
    if not args.table:
        for name, v in VARIANTS.items():
            print(f"{name:20s} {v.ablation or 'released':9s} forms: {', '.join(v.official_forms) or '-':18s} "
                  f"{v.notes}")
        return 0
    rows = model_table(args.models, ablations=args.all)
    writer = csv.DictWriter(sys.stdout, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        with open(args.out / "model_table.csv", "w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=TABLE_COLUMNS, lineterminator="\n")
            out.writeheader()
            out.writerows(rows)
        (args.out / "model_table.md").write_text(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))

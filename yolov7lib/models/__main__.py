"""``python -m yolov7lib.models --table``: parameters and GFLOPs of every model, beside the paper."""

from __future__ import annotations

import argparse
import csv
import sys

from ..complexity import TABLE_COLUMNS, model_table
from .zoo import VARIANTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yolov7lib.models", description=__doc__)
    parser.add_argument("--table", action="store_true", help="print the complexity table as CSV")
    parser.add_argument("--models", nargs="*", choices=list(VARIANTS), help="only these models")
    args = parser.parse_args(argv)
    if not args.table:
        print("\n".join(f"{name}: {v.notes or ''}".rstrip(": ") for name, v in VARIANTS.items()))
        return 0
    writer = csv.DictWriter(sys.stdout, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(model_table(args.models))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

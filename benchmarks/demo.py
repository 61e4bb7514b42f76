"""The demo's wall time: `make demo` from a clean tree, per stage, and its model's validation Dice.

    make clean && python benchmarks/demo.py --run    # time `make demo` (the workflow and the report)
    python benchmarks/demo.py                        # only summarise the last run in this tree

Per stage, the span from the first job's start to the last job's end comes from Snakemake's own job
records (.snakemake/metadata); stages overlap where jobs of different rules ran side by side. Then the
best held-out validation Dice of every fold of results/model. Target: `make demo` at most 20 minutes
on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: the workflow's rules grouped into the stages a user sees, in order
STAGES = {
    "demo cohort": ("demo_cohort",),
    "preprocessing": ("preprocess", "preprocess_training", "weight_map", "prepare_case"),
    "training": ("train", "finalise_model"),
    "inference and analysis": (
        "predict",
        "evaluate",
        "track",
        "rano",
        "rano_cohort",
        "evaluate_cohort",
    ),
}


def job_spans(workdir: Path) -> dict[str, tuple[float, float]]:
    """Rule -> (first start, last end) in epoch seconds, over the jobs recorded in .snakemake/metadata."""
    spans: dict[str, tuple[float, float]] = {}
    for path in (workdir / ".snakemake" / "metadata").rglob("*"):
        record = json.loads(path.read_text()) if path.is_file() else {}
        if record.get("starttime") and record.get("endtime"):
            start, end = spans.get(record["rule"], (record["starttime"], record["endtime"]))
            spans[record["rule"]] = (min(start, record["starttime"]), max(end, record["endtime"]))
    return spans


def minutes(seconds: float) -> str:
    """Seconds as 'M min S s'."""
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def main() -> None:
    """Optionally run `make demo`, then print the stage spans and the folds' validation Dice."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run `make demo` first and time it")
    args = parser.parse_args()
    if args.run:
        started = time.perf_counter()
        subprocess.run(["make", "demo"], cwd=REPO, check=True)
        print(
            f"make demo: {minutes(time.perf_counter() - started)} wall (target <= 20 min), "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
    spans = job_spans(REPO)
    if not spans:
        raise SystemExit(f"no finished jobs recorded under {REPO / '.snakemake' / 'metadata'}; run `make demo` first")
    for stage, rules in STAGES.items():
        own = [spans[rule] for rule in rules if rule in spans]
        if own:
            start, end = min(s for s, _ in own), max(e for _, e in own)
            print(f"{stage}: {minutes(end - start)}")
    print(
        f"workflow, first job start to last job end: "
        f"{minutes(max(e for _, e in spans.values()) - min(s for s, _ in spans.values()))} (without the report)"
    )
    for state_path in sorted((REPO / "results" / "model").glob("fold_*/state.json")):
        state = json.loads(state_path.read_text())
        print(
            f"{state_path.parent.name}: best validation Dice {state['best_dice']:.3f} at epoch {state['best_epoch']} "
            f"on {len(state['validation_cases'])} held-out case(s)"
        )


if __name__ == "__main__":
    main()

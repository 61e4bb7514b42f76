"""Does the test suite notice when the product breaks? Apply deliberate breaks, one at a time, and count.

Each break is an exact text substitution (old -> new) in one file of the project, written to look like a
plausible slip: an option renamed in a rule, gradients negated, a refusal deleted, a threshold off. For
each break the script copies the project (the files git tracks or would track, as they are in the working
tree) into a fresh temporary folder, with `shared` linked beside it (the real scans of
`../shared/data/real`) and what `make env` installs beside the code (`.venv-scorers`, the review page's viewer
`viewer/node_modules`) linked in, applies the break there, and
runs that break's relevant tests on the copy (`python -m pytest -x -q FILES`, PYTHONPATH = the copy, so
that the `brainmets` command Snakemake starts runs the broken code too). A break is caught when a test
fails; the line says which, and how long it took. A break whose old text is not found exactly once in its
file is an error, not a catch: the list cannot rot silently when the code changes.

It lives in benchmarks/ (scripts run by hand that print figures; pytest never collects them) because its
result is a figure about the suite, "N of M breaks caught", and because it runs for tens of minutes:
every break of a rule file reruns the whole workflow test (tests/test_workflow_chain.py, minutes each).

    python benchmarks/mutations.py                 # every break; exit status 1 unless all are caught
    python benchmarks/mutations.py --list          # the breaks, their files and tests; checks each applies
    python benchmarks/mutations.py --only rano-best-out train-gradient-ascent
    python benchmarks/mutations.py --no-control    # skip running each list of tests on the unbroken copy first

Run it with the project's environment (`.venv/bin/python benchmarks/mutations.py`). A break counts only if
the suite passes without it: each distinct list of tests first runs once on the unbroken copy (a control),
and a failure there is an error, not a catch (`--no-control` skips it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: the workflow run through every rule after training (its dry runs in tests/test_workflow.py run no command)
WORKFLOW = ("tests/test_workflow_chain.py",)


@dataclass(frozen=True)
class Break:
    """One deliberate break: `old` replaced by `new` in `path`, and the test files that should notice."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


BREAKS: tuple[Break, ...] = (
    # --- the breaks of the issue that asked for this script ---------------------------------------
    Break(
        "rano-best-out",
        "rules/rano.smk",
        "--best-out {output.best}",
        "--best-output {output.best}",
        WORKFLOW,
    ),
    Break(
        "train-gradient-ascent",
        "brainmets/train/loop.py",
        "grads = tape.gradient(scaled, model.trainable_variables)",
        "grads = [-g for g in tape.gradient(scaled, model.trainable_variables)]",
        ("tests/test_train.py",),
    ),
    Break(
        "train-best-every-epoch",
        "brainmets/train/loop.py",
        'targets = ["best", "latest"] if improved else ["latest"]',
        'targets = ["best", "latest"]',
        ("tests/test_train.py",),
    ),
    Break(
        "infer-spacing-refusal-deleted",
        "brainmets/inference/pipeline.py",
        "    check_spacing(image_img.affine, segmenter.spacing_mm, str(image_path))\n",
        "",
        ("tests/test_infer.py",),
    ),
    Break(
        "published-entropy-collapsed",
        "brainmets/inference/published.py",
        "    return dataclasses.replace(accumulator.result(), label=label.astype(np.uint8))",
        "    maps = accumulator.result()\n"
        "    return dataclasses.replace(\n"
        "        maps,\n"
        "        label=label.astype(np.uint8),\n"
        "        total_entropy=maps.expected_entropy,\n"
        "        mutual_information=np.zeros_like(maps.mutual_information),\n"
        "    )",
        ("tests/test_published_recipe.py", "tests/test_uncertainty.py", "tests/test_infer.py"),
    ),
    # --- one option of each other rule that runs after training, and the report ---------------------
    Break(
        "rule-stage-config-sections",
        "rules/config.smk",
        "sections=lambda wildcards: {key: config.get(key) for key in STAGE_SECTIONS[wildcards.stage]},",
        "section=lambda wildcards: {key: config.get(key) for key in STAGE_SECTIONS[wildcards.stage]},",
        WORKFLOW,
    ),
    Break(
        "stage-config-script-empty",
        "scripts/stage_config.py",
        "write_stage_config(job.params.sections, job.output[0])",
        "write_stage_config({}, job.output[0])",
        WORKFLOW,
    ),
    Break(
        "rule-preprocess-option",
        "rules/preprocess.smk",
        "--image {input.image} {params.options}",
        "--input-image {input.image} {params.options}",
        WORKFLOW,
    ),
    Break(
        "rule-predict-option",
        "rules/inference.smk",
        "--native-dir $(dirname {output.native})",
        "--native-folder $(dirname {output.native})",
        WORKFLOW,
    ),
    Break(
        "rule-track-option",
        "rules/track.smk",
        "--patient {wildcards.patient}",
        "--patient-id {wildcards.patient}",
        WORKFLOW,
    ),
    Break(
        "rule-rano-option",
        "rules/rano.smk",
        "--trajectory {output.trajectory}",
        "--trajectory-png {output.trajectory}",
        WORKFLOW,
    ),
    Break(
        "rule-evaluate-option",
        "rules/evaluation.smk",
        "--lesions {output.lesions}",
        "--lesion-table {output.lesions}",
        WORKFLOW,
    ),
    Break(
        "rule-evaluate-cohort-option",
        "rules/evaluation.smk",
        "--summary {output.summary}",
        "--summary-table {output.summary}",
        WORKFLOW,
    ),
    Break(
        "report-category",
        "rules/evaluation.smk",
        'caption="../workflow/report/sensitivity.rst",\n            category="Cohort",',
        'caption="../workflow/report/sensitivity.rst",\n            category="Evaluation",',
        WORKFLOW,
    ),
    Break(
        "rule-review-page-option",
        "rules/review.smk",
        "--out {output.page} --patient {wildcards.patient}",
        "--out {output.page} --patient-id {wildcards.patient}",
        WORKFLOW,
    ),
    # --- the rules of scans that came from DICOM: their workflow run is in tests/test_dicom_outputs.py -----
    Break(
        "rule-dicom-to-nifti-option",
        "rules/preprocess.smk",
        "convert-dicom {input.series:q} --out {output.image}",
        "convert-dicom {input.series:q} --output {output.image}",
        ("tests/test_dicom_outputs.py",),
    ),
    Break(
        "rule-dicom-outputs-option",
        "rules/export.smk",
        "--lesions {input.lesions}",
        "--lesion-table {input.lesions}",
        ("tests/test_dicom_outputs.py",),
    ),
    # --- critical modules ----------------------------------------------------------------------------
    Break(
        "rano-partial-response-threshold",
        "brainmets/rano/rano.py",
        "if sld <= (1.0 - s.pr_relative) * baseline_sld + _EPS:",
        "if sld <= (1.0 - 2 * s.pr_relative) * baseline_sld + _EPS:",
        ("tests/test_rano.py", "tests/test_rano_parts.py"),
    ),
    Break(
        "rano-target-growth-from-largest",
        "brainmets/rano/rano.py",
        "grown = any(ld[i] - min(history_ld[i]) >= s.pd_absolute_mm - _EPS for i in history_ld)",
        "grown = any(ld[i] - max(history_ld[i]) >= s.pd_absolute_mm - _EPS for i in history_ld)",
        ("tests/test_rano.py", "tests/test_rano_parts.py"),
    ),
    Break(
        "track-matching-minimises-overlap",
        "brainmets/track/track.py",
        "cost = np.where(feasible, -sub if maximise else sub, 1e12)",
        "cost = np.where(feasible, sub, 1e12)",
        ("tests/test_track.py", "tests/test_longitudinal.py"),
    ),
    Break(
        "brats2023-merging-dilation-26",
        "brainmets/evaluation/metrics.py",
        "_DILATION = ndimage.generate_binary_structure(3, 2)",
        "_DILATION = ndimage.generate_binary_structure(3, 3)",
        ("tests/test_evaluation.py", "tests/test_evaluation_cohort.py"),
    ),
    Break(
        "brats2023-missed-lesion-hd95",
        "brainmets/evaluation/metrics.py",
        "            dice, hd95 = 0.0, HD95_MISSING_MM",
        "            dice, hd95 = 0.0, 0.0",
        ("tests/test_evaluation.py", "tests/test_evaluation_cohort.py"),
    ),
    Break(
        "native-grid-wrong-transform",
        "brainmets/preprocess/native.py",
        "    transform = read_transform(Path(scan_dir) / PATIENT_TO_SCAN)\n    moved, _ = _move(data, affine,",
        "    transform = read_transform(Path(scan_dir) / SCAN_TO_PATIENT)\n    moved, _ = _move(data, affine,",
        ("tests/test_preprocess_parts.py", "tests/test_preprocess.py"),
    ),
    Break(
        "uncertainty-mutual-information-sign",
        "brainmets/inference/uncertainty.py",
        "mutual_information=(total - expected).astype(np.float32)",
        "mutual_information=(expected - total).astype(np.float32)",
        ("tests/test_uncertainty.py",),
    ),
    Break(
        "review-rejection-counted",
        "brainmets/rano/rano.py",
        'present = table[(table["component"] > 0) & (table["lesion_id"] > 0) & ~is_rejected(table["review"])]',
        'present = table[(table["component"] > 0) & (table["lesion_id"] > 0)]',
        ("tests/test_review.py",),
    ),
    Break(
        "dicom-tracking-uid-per-patient",
        "brainmets/export/dicom.py",
        'return derived_uid("tracking", patient_id, str(lesion_id))',
        'return derived_uid("tracking", patient_id)',
        ("tests/test_dicom_outputs.py",),
    ),
    Break(
        "dicom-sheet-prefers-2d",
        "brainmets/dicom/sheet.py",
        "return is_3d(record), -thickness, record.time, record.series_number or 0",
        "return not is_3d(record), -thickness, record.time, record.series_number or 0",
        ("tests/test_dicom_sheet.py",),
    ),
    Break(
        "dicomweb-user-info-kept",
        "brainmets/dicom/dicomweb.py",
        '            if "@" in host:\n                word = word[:start]',
        "            if False:\n                word = word[:start]",
        ("tests/test_dicomweb.py",),
    ),
    Break(
        "zscore-half-scale",
        "brainmets/preprocess/intensity.py",
        "out[inside] = ((values - mean) / std).astype(np.float32)",
        "out[inside] = ((values - mean) / (2 * std)).astype(np.float32)",
        ("tests/test_preprocess_parts.py", "tests/test_preprocess.py"),
    ),
)


class BreakError(Exception):
    """A break that cannot be applied (its text is not found exactly once), or a run that could not test it."""


def project_files(repo: Path) -> list[str]:
    """Files git tracks or would track (not ignored), relative to the repository, as in the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (repo / name).is_file()]


def copy_project(repo: Path, folder: Path) -> Path:
    """A copy of the project at folder/<repo name>, with `shared` beside it and what `make env` installs linked in."""
    copy = folder / repo.name
    for name in project_files(repo):
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target)
    shared = repo.parent / "shared"
    if shared.exists():
        (folder / "shared").symlink_to(shared.resolve())
    # set up by `make env`, ignored by git: the scorers' environment and the review page's viewer
    for installed in (".venv-scorers", "viewer/node_modules"):
        if (repo / installed).exists():
            (copy / installed).parent.mkdir(parents=True, exist_ok=True)
            (copy / installed).symlink_to((repo / installed).resolve())
    return copy


def apply_break(copy: Path, change: Break) -> None:
    """Replace the break's old text by its new text in the copy; BreakError unless it occurs exactly once."""
    path = copy / change.path
    if not path.is_file():
        raise BreakError(f"{change.name}: {change.path} does not exist")
    text = path.read_text()
    count = text.count(change.old)
    if count != 1:
        raise BreakError(f"{change.name}: the text to break occurs {count} times in {change.path}, not once")
    path.write_text(text.replace(change.old, change.new))


#: pytest's summary line of a failing test (the suite's addopts ask for -ra)
_FAILED = re.compile(r"^(?:FAILED|ERROR) \S+", re.MULTILINE)


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, str, str]:
    """Run the test files on the copy; returns pytest's exit status, its first FAILED/ERROR line, the output's tail."""
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PYTHONPATH=str(copy), PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "", f"timed out after {timeout:.0f} s"
    output = done.stdout + done.stderr
    failed = _FAILED.search(output)
    return done.returncode, failed.group(0) if failed else "", output[-2000:]


def check_break(change: Break, timeout: float, control: bool) -> tuple[bool, str]:
    """Whether a test catches the break, and what to print about it; raises BreakError when it cannot be tried.

    With `control`, the break's tests first run on the unbroken copy: a failure there (a missing program, an
    environment that lost a package) is an error, not a catch.
    """
    with tempfile.TemporaryDirectory(prefix=f"brainmets-mutation-{change.name}-") as folder:
        copy = copy_project(REPO, Path(folder))
        if control:
            status, failed, tail = run_tests(copy, change.tests, timeout)
            if status != 0:
                raise BreakError(f"{change.name}: the tests fail without the break ({failed or status}):\n{tail}")
        apply_break(copy, change)
        status, failed, tail = run_tests(copy, change.tests, timeout)
    if status == 0:
        return False, "every test passed"
    if status in (1, 2):  # tests failed, or could not even be collected: either way the suite fails
        return True, failed or f"pytest exit status {status}: {tail.strip().splitlines()[-1] if tail else ''}"
    raise BreakError(f"{change.name}: pytest exit status {status} on {' '.join(change.tests)}: {tail.strip()[-300:]}")


def main(argv: list[str] | None = None) -> int:
    """Apply the chosen breaks one by one, print one line each and the figure; 1 unless every break is caught."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these breaks (names from --list)")
    parser.add_argument("--list", action="store_true", help="print the breaks and their tests, run nothing")
    parser.add_argument(
        "--no-control",
        action="store_true",
        help="skip the control: by default each distinct list of tests first runs once on the unbroken copy",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per pytest run (default 1800)")
    args = parser.parse_args(argv)

    known = {change.name: change for change in BREAKS}
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        parser.error(f"unknown break(s) {', '.join(unknown)}; see --list")
    chosen = [known[name] for name in args.only] if args.only else list(BREAKS)
    if args.list:
        status = 0
        for change in chosen:
            path = REPO / change.path
            count = path.read_text().count(change.old) if path.is_file() else 0
            status |= count != 1
            found = "" if count == 1 else f"  ERROR: its text occurs {count} times"
            print(f"{change.name:36s} {change.path:36s} {' '.join(change.tests)}{found}")
        return status

    caught, errors = 0, 0
    width = max(len(change.name) for change in chosen)
    controlled: set[tuple[str, ...]] = set()  # test lists already run on an unbroken copy
    for change in chosen:
        started = time.monotonic()
        control = not args.no_control and change.tests not in controlled
        try:
            found, what = check_break(change, args.timeout, control)
            controlled.add(change.tests)
        except BreakError as error:
            errors += 1
            print(f"ERROR      {change.name:{width}s}  {error}", flush=True)
            continue
        caught += found
        verdict = "caught    " if found else "NOT caught"
        print(
            f"{verdict} {change.name:{width}s}  {change.path}  {what}  {time.monotonic() - started:.0f} s", flush=True
        )
    print(f"{caught} of {len(chosen)} breaks caught" + (f" ({errors} could not be tried)" if errors else ""))
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())

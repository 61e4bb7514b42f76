"""Faults of the machine while a command writes or reads: one line naming the path, nothing half-written.

Every command that writes is run once to completion (its earlier output), then again with the
operating system's error injected into the writes under its output: from Python's `open` (pandas,
nibabel, matplotlib, numpy, json), `os.open`/`os.mkdir` (our temporary files and folders) and
`h5py.File` (Keras weight files), raised as each library really raises it (a failed write has no
file name; h5py quotes the errno in its text). The fault strikes half-way through the command's
writes. Then: exit status 1, exactly one line on stderr naming a path under the output, no traceback,
no temporary file left, and every output still complete, the one whose write failed untouched.
"""

from __future__ import annotations

import builtins
import errno
import gzip
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from brainmets.cli import main
from brainmets.errors import FAULTS
from brainmets.io import save_nifti, write_tsv

from conftest import TINY_NETWORK, TINY_PATCH, TINY_SPACING_MM, write_tiny_model
from published_checkpoint import published_variable_shapes, random_published_weights, write_published_checkpoint
from synthetic import synthetic_scan, write_synthetic_cases

#: faults that strike while data is written (the error has no file name) and those that refuse to create a file
WRITE_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG)
CREATE_FAULTS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.EMFILE, errno.EISDIR, errno.ENOTDIR)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
TRAIN_PRESET = {
    "network": {"filters": [4, 8, 16], "deep_supervision_heads": 1},
    "patch_size": [16, 16, 16],
    "batch_size": 1,
    "epochs": 1,
    "iterations_per_epoch": 1,
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small inputs of every command: 2 mm scans and masks, tables, a tiny model, training cases, a checkpoint."""
    from brainmets.train.settings import load_preset

    root = tmp_path_factory.mktemp("fault_inputs")
    rng = np.random.default_rng(7)
    for name in ("t0", "t1"):
        image, label = synthetic_scan(rng, (48, 48, 48), lesions=2, radius_mm=(2.0, 4.0))
        brain = image != 0  # a skull-stripped scan: positive brain, background 0
        save_nifti(
            np.where(brain, image - image.min() + 1.0, 0.0).astype(np.float32), AFFINE, root / f"{name}_image.nii.gz"
        )
        save_nifti(label, AFFINE, root / f"{name}.nii.gz")
    write_tsv(
        pd.DataFrame(
            {"timepoint": ["2024-01-01", "2024-03-01"], "mask": [str(root / "t0.nii.gz"), str(root / "t1.nii.gz")]}
        ),
        root / "manifest.tsv",
    )
    config = {"preprocess": {"spacing_mm": TINY_SPACING_MM}, "inference": {"mirror_axes": [], "overlap": 0.25}}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    preset = {**TRAIN_PRESET, **{k: load_preset("demo")[k] for k in ("optimizer", "loss", "augmentation")}}
    (root / "tiny.yaml").write_text(yaml.safe_dump(preset))
    train_config = {"model": {"preset": str(root / "tiny.yaml")}, "train": {"folds": 2, "device": "cpu"}}
    (root / "train.yaml").write_text(yaml.safe_dump(train_config))
    write_synthetic_cases(root / "training", patients=2, timepoints=1, shape=(24, 24, 24))
    write_tiny_model(root / "model")
    state = {
        "finished": True,
        "preset": "tiny",
        "network": TINY_NETWORK,
        "patch_size": TINY_PATCH,
        "spacing_mm": TINY_SPACING_MM,
    }
    (root / "state.json").write_text(json.dumps(state))
    write_published_checkpoint(
        root / "published" / "Model_0", random_published_weights(published_variable_shapes((4, 8, 8, 16)), seed=1), 3
    )
    steps = [
        ["preprocess", str(root / "t0_image.nii.gz"), "--out-dir", str(root / "scan"), "--skull-stripped"],
        ["track", str(root / "manifest.tsv"), "--out", str(root / "tracked"), "--patient", "P1"],
        ["evaluate", "--truth", str(root / "t0.nii.gz"), "--pred", str(root / "t1.nii.gz")],
    ]
    steps[0] += ["--config", str(root / "config.yaml")]
    steps[2] += ["--out", str(root / "evaluation.tsv")]
    for argv in steps:
        assert main(argv) == 0, argv
    return root


def command_argv(command: str, root: Path, out: Path) -> list[str]:
    """The arguments of `command` reading the inputs under `root` and writing under `out`."""
    config = ["--config", str(root / "config.yaml")]
    model = ["--model", str(root / "model"), *config]
    scan = root / "scan"
    return {
        "measure": ["measure", str(root / "t0.nii.gz"), "--out", str(out / "lesions.tsv")],
        "track": ["track", str(root / "manifest.tsv"), "--out", str(out)],
        "rano": [
            "rano",
            str(root / "tracked" / "lesions.tsv"),
            "--out",
            str(out / "r.tsv"),
            "--best-out",
            str(out / "b.tsv"),
        ],
        "evaluate": [
            "evaluate",
            *("--truth", str(root / "t0.nii.gz"), "--pred", str(root / "t1.nii.gz")),
            *("--out", str(out / "e.tsv"), "--lesions", str(out / "l.tsv")),
        ],
        "evaluate-cohort": [
            "evaluate-cohort",
            str(root / "evaluation.tsv"),
            *("--out", str(out / "c.tsv"), "--summary", str(out / "s.tsv"), "--figure", str(out / "f.png")),
        ],
        "weight-map": ["weight-map", "--label", str(root / "t0.nii.gz"), "--out", str(out / "w.nii.gz")],
        "prepare-case": [
            "prepare-case",
            *("--image", str(root / "t0_image.nii.gz"), "--label", str(root / "t0.nii.gz"), "--out-dir", str(out)),
        ],
        "preprocess": ["preprocess", str(root / "t1_image.nii.gz"), "--out-dir", str(out), "--skull-stripped", *config],
        "to-native": [
            "to-native",
            str(scan / "brain_mask.nii.gz"),
            "--scan-dir",
            str(scan),
            "--out",
            str(out / "n.nii.gz"),
        ],
        "predict": [
            "predict",
            *("--image", str(scan / "t1ce_zscore.nii.gz"), "--brain-mask", str(scan / "brain_mask.nii.gz")),
            *("--out-dir", str(out), *model),
        ],
        "segment": ["segment", str(root / "t1_image.nii.gz"), "--out-dir", str(out), "--skull-stripped", *model],
        "train": ["train", "--cases", str(root / "training" / "cases"), "--fold", "0", "--model-dir", str(out)]
        + ["--config", str(root / "train.yaml"), "--quiet"],
        "finalise-model": ["finalise-model", "--model-dir", str(out)],
        "import-model": ["import-model", str(root / "published"), "--format", "brain-mets-seg", "--out", str(out)],
        "demo-cohort": ["demo-cohort", "--out", str(out), "--patients", "1", "--timepoints", "2", "--train", "0"]
        + ["--scale", "2"],
    }[command]


def prepare_output(command: str, root: Path, out: Path) -> None:
    """What must be in the output before the command runs (finalise-model's trained folds)."""
    if command == "finalise-model":
        for fold in (0, 1):
            (out / f"fold_{fold}").mkdir(parents=True)
            (out / f"fold_{fold}" / "state.json").write_text((root / "state.json").read_text())
            (out / f"fold_{fold}" / "best.weights.h5").write_bytes(
                (root / "model" / f"fold_{fold}" / "best.weights.h5").read_bytes()
            )


#: commands whose output cannot be written over (a new folder) or is not rewritten when complete (a trained
#: fold): their fault run starts without the earlier output
FRESH_OUTPUT = {"import-model", "train"}
#: commands that run TensorFlow or a whole pipeline: more than a few seconds
SLOW = {"train", "segment", "import-model", "demo-cohort", "predict", "preprocess"}
COMMANDS = [
    "measure",
    "track",
    "rano",
    "evaluate",
    "evaluate-cohort",
    "weight-map",
    "prepare-case",
    "to-native",
    "finalise-model",
    "preprocess",
    "predict",
    "segment",
    "train",
    "import-model",
    "demo-cohort",
]


class Injector:
    """Counts the writes under a folder and, from the `strike`-th on, raises the fault `code` as the OS would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, under: Path, code: int | None, strike: int) -> None:
        self.under, self.code, self.strike, self.writes = str(under), code, strike, 0
        real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
        import h5py

        real_h5 = h5py.File

        def check(path: object, creating: bool) -> None:
            """Count a write of `path` and raise the fault when it is due."""
            if not isinstance(path, str | bytes | os.PathLike) or not os.path.abspath(os.fsdecode(path)).startswith(
                self.under
            ):
                return
            self.writes += 1
            if self.code is None or self.writes < self.strike:
                return
            if self.code in WRITE_FAULTS:
                if not creating:  # a failed write(): no file name
                    raise OSError(self.code, os.strerror(self.code))
            else:
                raise OSError(self.code, os.strerror(self.code), os.fsdecode(path))

        def fake_open(file, mode="r", *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
            if isinstance(mode, str) and any(c in mode for c in "wax+"):
                check(file, creating=False)
            return real_open(file, mode, *args, **kwargs)

        def fake_os_open(path, flags, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
            if flags & os.O_CREAT:
                check(path, creating=True)
            return real_os_open(path, flags, *args, **kwargs)

        def fake_mkdir(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
            check(path, creating=True)
            return real_mkdir(path, *args, **kwargs)

        def fake_h5(name, mode="r", *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
            if isinstance(name, str | os.PathLike) and mode in ("w", "w-", "x", "a", "r+"):
                try:
                    check(name, creating=False)
                except OSError as error:  # h5py's wording of the same fault
                    raise OSError(
                        error.errno,
                        f"Unable to synchronously create file (file write failed: filename = '{name}', "
                        f"errno = {error.errno}, error message = '{os.strerror(error.errno or 0)}')",
                    ) from None
            return real_h5(name, mode, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
        monkeypatch.setattr(os, "open", fake_os_open)
        monkeypatch.setattr(os, "mkdir", fake_mkdir)
        monkeypatch.setattr(h5py, "File", fake_h5)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder`: relative path -> (content, gunzipped for .gz, and inode)."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "preprocessing.json":  # the same but for the seconds each step took
            data = json.dumps({k: v for k, v in json.loads(data).items() if k != "timings_s"}).encode()
        files[str(path.relative_to(folder))] = (
            gzip.decompress(data) if path.name.endswith(".gz") else data,
            path.stat().st_ino,
        )
    return files


def run_with_fault(
    command: str,
    code: int,
    inputs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Run `command` once, then with fault `code` half-way through its writes, and check what the user sees and gets."""
    out = tmp_path / "out"
    prepare_output(command, inputs, out)
    counting = Injector(monkeypatch, tmp_path, None, 0)
    assert main(command_argv(command, inputs, out)) == 0
    monkeypatch.undo()
    assert counting.writes > 0, "the command wrote nothing under its output"
    complete = snapshot(out)
    if command in FRESH_OUTPUT:
        import shutil

        shutil.rmtree(out)
        prepare_output(command, inputs, out)
    earlier = snapshot(out) if out.exists() else {}
    capsys.readouterr()
    strike = counting.writes // 2 + 1
    Injector(monkeypatch, tmp_path, code, strike)
    status = main(command_argv(command, inputs, out))
    monkeypatch.undo()
    error = capsys.readouterr().err
    assert status == 1, error
    lines = error.strip().splitlines()
    assert len(lines) == 1, error
    assert "Traceback" not in error
    prefix = f"brainmets {command}: error: "
    assert lines[0].startswith(prefix), lines[0]
    named = lines[0][len(prefix) :].split(": ")[0]
    assert named == str(out) or named.startswith(str(out) + os.sep), lines[0]
    assert ".part" not in named, lines[0]
    words, fix = FAULTS[code]
    assert words in lines[0] and fix in lines[0]
    leftovers = [p for p in out.parent.rglob("*") if ".part" in p.name] if out.parent.exists() else []
    assert not leftovers, leftovers
    after = snapshot(out) if out.exists() else {}
    for name, (content, _inode) in after.items():  # every file complete: the one of a full run
        assert content == complete[name][0], f"{name} is not the complete output"
        if name in earlier:
            assert content == earlier[name][0]
    failed = os.path.relpath(named, out)
    if failed in earlier:  # the file whose replacement failed is the earlier one, untouched
        assert after[failed][1] == earlier[failed][1]


@pytest.mark.parametrize("command", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in COMMANDS])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_disk_ends_every_command_in_one_line_and_leaves_complete_files(
    command: str, code: int, inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    run_with_fault(command, code, inputs, tmp_path, monkeypatch, capsys)


@pytest.mark.parametrize("code", sorted({*WRITE_FAULTS, *CREATE_FAULTS} - {errno.ENOSPC, errno.EROFS}))
@pytest.mark.parametrize("command", ["measure", "evaluate-cohort"])
def test_every_fault_is_told_in_words_with_what_to_do(
    command: str, code: int, inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    run_with_fault(command, code, inputs, tmp_path, monkeypatch, capsys)


@pytest.mark.parametrize("code", [errno.EIO, errno.EACCES, errno.EMFILE])
@pytest.mark.parametrize("command", ["check-samples", "measure", "evaluate-cohort"])
def test_a_failing_read_ends_in_one_line_naming_the_input(
    command: str, code: int, inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The read fails as failing storage does: open succeeds for the others, the input's read has no file name."""
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(
        "patient_id\ttimepoint\timage\tmask\ttraining\n"
        f"P1\t2024-01-01\t{inputs / 't0_image.nii.gz'}\t{inputs / 't0.nii.gz'}\tfalse\n"
    )
    failing = {"check-samples": inputs / "t0.nii.gz", "measure": inputs / "t0.nii.gz"}.get(
        command, inputs / "evaluation.tsv"
    )
    argv = {"check-samples": ["check-samples", str(sheet)]}.get(command) or command_argv(command, inputs, tmp_path)
    real_open = builtins.open

    def failing_open(file, mode="r", *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if isinstance(file, str | os.PathLike) and Path(file) == failing and "r" in str(mode):
            raise OSError(code, os.strerror(code))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", failing_open)
    monkeypatch.setattr(io, "open", failing_open)
    status = main(argv)
    monkeypatch.undo()
    error = capsys.readouterr().err
    assert status == 1 and len(error.strip().splitlines()) == 1 and "Traceback" not in error, error
    assert error.startswith(f"brainmets {command}: error: {failing}: cannot read ({FAULTS[code][0]}); "), error

"""Faults of the machine in words: the errors libraries really raise, tracebacks on request, quiet TensorFlow,
folders that follow the umask, and (system tests) a real full and read-only disk under the commands."""

from __future__ import annotations

import errno
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from brainmets.cli import main
from brainmets.errors import BrainmetsError, StorageError, storage_error
from brainmets.io import atomic_path, make_folder, save_nifti, temporary_folder
from brainmets.terminal import is_chatter

from conftest import write_tiny_model

#: what h5py (Keras weight files) raises on a full disk: errno in the text, the file's name quoted
H5PY_FULL = (
    "[Errno 28] Unable to synchronously create file (file write failed: time = Mon Dec  7 09:10:49 2026\n, "
    "filename = '/data/m.weights.h5', file descriptor = 5, errno = 28, error message = 'No space left on device', "
    "buf = 0x556322d9ae08, total write size = 96, bytes this sub-write = 96, offset = 0)"
)
#: what TensorFlow's C++ libraries print while they load
CHATTER = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796634647.333216    4376 port.cc:153] oneDNN custom operations are on. You may see ...",
    "I0000 00:00:1796634647.360449    4376 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow ...",
]


def test_library_errors_become_one_line_naming_the_file() -> None:
    h5 = storage_error(OSError(28, H5PY_FULL))
    assert (
        str(h5) == "/data/m.weights.h5: no space left on the disk; free space there or choose a folder on another disk"
    )
    lost = storage_error(OSError(errno.EDQUOT, "Disk quota exceeded"), "/x/out.tsv", action="cannot write")
    assert str(lost).startswith("/x/out.tsv: cannot write (disk quota exceeded); free space within your quota")
    itk = storage_error(RuntimeError("ITK ERROR: Failed to write: Read-only file system"), "/x/t.mat")
    assert itk is not None and itk.errno == errno.EROFS and str(itk).startswith("/x/t.mat: read-only file system")
    temporary = storage_error(
        OSError(errno.EIO, "Input/output error", "/x/.o.tsv.1a2b.part.tsv"),
        "/x/o.tsv",
        temporary="/x/.o.tsv.1a2b.part.tsv",
    )
    assert str(temporary).startswith("/x/o.tsv: input/output error")


def test_bad_input_and_bugs_are_not_faults_of_the_machine() -> None:
    assert storage_error(BrainmetsError("x.tsv: missing column id")) is None
    assert storage_error(ValueError("errno = 28 in a value")) is None
    assert storage_error(OSError("Not a gzipped file (b'ab')")) is None  # gzip's damaged-file error: bad input
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise KeyError("a bug while handling it") from None
    except KeyError as bug:
        assert storage_error(bug) is None


def test_a_fault_crosses_from_a_worker_process_intact() -> None:
    fault = StorageError("/x/o.nii.gz", errno.ENOSPC, "cannot write")
    again = pickle.loads(pickle.dumps(fault))
    assert str(again) == str(fault) and again.path == "/x/o.nii.gz" and again.errno == errno.ENOSPC


def test_a_fault_in_a_write_names_the_output_and_keeps_the_earlier_file(tmp_path: Path) -> None:
    out = tmp_path / "table.tsv"
    out.write_text("earlier\n")
    with pytest.raises(StorageError) as raised:
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")  # what a failed write() raises
    assert str(raised.value).startswith(f"{out}: cannot write (no space left on the disk)")
    assert out.read_text() == "earlier\n" and os.listdir(tmp_path) == ["table.tsv"]


@pytest.mark.parametrize("ask", ["--debug", "BRAINMETS_DEBUG"])
def test_debug_shows_the_traceback_of_any_error(ask: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["measure", str(tmp_path / "absent.nii.gz"), "--out", str(tmp_path / "l.tsv")]
    assert main(argv) == 2
    if ask == "--debug":
        argv.append("--debug")
    else:
        monkeypatch.setenv("BRAINMETS_DEBUG", "1")
    with pytest.raises(BrainmetsError, match="absent.nii.gz: file not found"):
        main(argv)


def test_a_fault_outside_any_atomic_write_still_ends_in_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("")
    mask = np.zeros((8, 8, 8), np.uint8)
    mask[2:5, 2:5, 2:5] = 1
    save_nifti(mask, np.eye(4), tmp_path / "m.nii.gz")
    assert main(["measure", str(tmp_path / "m.nii.gz"), "--out", str(tmp_path / "file" / "l.tsv")]) == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        f"brainmets measure: error: {tmp_path / 'file'}: cannot create the folder "
        "(a part of the path is a file where a folder was expected); give a path through folders"
    )


def test_tensorflow_start_up_chatter_is_recognised_and_errors_are_not() -> None:
    assert all(is_chatter(line) for line in CHATTER)
    assert not is_chatter("E0000 00:00:1796634647.360449    4376 cuda_dnn.cc:8] could not load cuDNN")
    assert not is_chatter("2026-12-07 09:14:35,253 brainmets.inference.runtime: precision bfloat16")


@pytest.fixture
def umask_027() -> Iterator[None]:
    """Run the test under umask 027 (group may read, others nothing), restored afterwards."""
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_folders_follow_the_umask(tmp_path: Path, umask_027: None) -> None:
    assert make_folder(tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o750
    assert temporary_folder(tmp_path, ".model.").stat().st_mode & 0o777 == 0o750  # not mkdtemp's 0700


def test_an_imported_model_folder_follows_the_umask(imported_model_dir: Path) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    expected = 0o777 & ~mask  # 0755 under 022, as mkdir makes folders (mkdtemp's 0700 before)
    assert imported_model_dir.stat().st_mode & 0o777 == expected
    assert (imported_model_dir / "fold_0").stat().st_mode & 0o777 == expected


@pytest.mark.slow
def test_predict_without_model_json_prints_exactly_one_line(tmp_path: Path) -> None:
    """TensorFlow is imported (as by any command that needs it) before the model folder turns out incomplete."""
    model = write_tiny_model(tmp_path / "model")
    (model / "model.json").unlink()
    image = np.zeros((16, 16, 16), np.float32)
    save_nifti(image, np.diag([2.0, 2.0, 2.0, 1.0]), tmp_path / "z.nii.gz")
    argv = ["predict", "--model", str(model), "--image", str(tmp_path / "z.nii.gz")]
    argv += ["--brain-mask", str(tmp_path / "z.nii.gz"), "--out-dir", str(tmp_path / "out")]
    script = (
        "import sys; from brainmets.cli import main; from brainmets.terminal import quiet_tensorflow_startup\n"
        "quiet_tensorflow_startup(); import tensorflow\n"
        "status = main(sys.argv[1:]); assert 'tensorflow' in sys.modules; sys.exit(status)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "BRAINMETS_QUIET_TENSORFLOW")}
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"brainmets predict: error: {model / 'model.json'}: file not found"]
    verbose = subprocess.run(
        [sys.executable, "-c", script.replace("()", "(True)", 1), *argv], capture_output=True, text=True, env=env
    )
    assert len(verbose.stderr.splitlines()) > 1  # asked for: TensorFlow's own lines are there


# ---- system tests: a real full and read-only disk (mounting needs root) ---------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs mounted at tmp_path/disk, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> None:
    """Fill a disk to the brim."""
    with open(disk / "ballast", "wb", buffering=0) as ballast:
        try:
            while True:
                ballast.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC


def brainmets(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run the `brainmets` command as a user does."""
    return subprocess.run([sys.executable, "-m", "brainmets.cli", *argv], capture_output=True, text=True)


@pytest.mark.system
@pytest.mark.slow
def test_a_real_full_and_read_only_disk_end_each_command_in_one_line(small_disk: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mask = (rng.random((40, 40, 40)) > 0.7).astype(np.uint8)
    save_nifti(mask, np.eye(4), tmp_path / "m.nii.gz")
    model = write_tiny_model(tmp_path / "model")
    image, brain = rng.normal(size=(16, 16, 16)).astype(np.float32), np.zeros((16, 16, 16), np.uint8)
    brain[1:15, 1:15, 1:15] = 1
    image[brain == 1] = (image[brain == 1] - image[brain == 1].mean()) / image[brain == 1].std()
    save_nifti(image, np.diag([2.0, 2.0, 2.0, 1.0]), tmp_path / "z.nii.gz")
    save_nifti(brain, np.diag([2.0, 2.0, 2.0, 1.0]), tmp_path / "b.nii.gz")
    earlier = small_disk / "out" / "lesions.tsv"
    earlier.parent.mkdir()
    earlier.write_text("earlier\n")
    fill(small_disk)
    commands = {
        "measure": ["measure", str(tmp_path / "m.nii.gz"), "--out", str(earlier)],
        "predict": ["predict", "--model", str(model), "--image", str(tmp_path / "z.nii.gz")]
        + ["--brain-mask", str(tmp_path / "b.nii.gz"), "--out-dir", str(small_disk / "out"), "--threads", "1"],
    }
    for name, argv in commands.items():
        done = brainmets(*argv)
        assert done.returncode == 1, done.stderr
        last = done.stderr.splitlines()[-1]
        assert (
            last.startswith(f"brainmets {name}: error: {small_disk / 'out'}/") and "no space left on the disk" in last
        )
        assert "Traceback" not in done.stderr and not any("oneDNN" in line for line in done.stderr.splitlines())
        assert earlier.read_text() == "earlier\n"
        assert sorted(p.name for p in (small_disk / "out").iterdir()) == ["lesions.tsv"]  # no temporary file left
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for name, argv in commands.items():
        done = brainmets(*argv)
        assert done.returncode == 1, done.stderr
        assert done.stderr.splitlines()[-1].startswith(f"brainmets {name}: error: {small_disk / 'out'}/")
        assert "(read-only file system); choose a folder on a writable disk" in done.stderr


@pytest.mark.system
def test_an_ants_transform_on_a_full_disk_is_refused_not_left_empty(small_disk: Path) -> None:
    """ITK writes nothing on a full disk and reports no error: the transform is read back before it counts."""
    from brainmets.preprocess.registration import identity_transform, write_transform

    earlier = small_disk / "scan_to_patient.mat"
    write_transform(identity_transform(), earlier)
    before = earlier.read_bytes()
    fill(small_disk)
    with pytest.raises(StorageError, match="no space left on the disk"):
        write_transform(identity_transform(), earlier)
    assert earlier.read_bytes() == before and sorted(os.listdir(small_disk)) == ["ballast", "scan_to_patient.mat"]

"""Reading and writing files safely: validated NIfTI, table, YAML and JSON input, atomic output.

Every output is written to a temporary sibling and renamed into place, so an interrupted job never
leaves a half-written file that a later step would accept, and an output from an earlier run stays as
it was when its replacement cannot be written. A fault of the machine while writing (a full disk, a
read-only mount, ...) becomes a StorageError naming the output, whatever library did the writing.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import secrets
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import nibabel as nib
import numpy as np
import pandas as pd
import yaml

from brainmets.errors import BrainmetsError, StorageError, raise_if_fault, storage_error

#: voxel spacings outside this range (mm) are refused as absurd
SPACING_RANGE_MM = (0.05, 20.0)


def _new_file(folder: Path, prefix: str, suffix: str) -> Path:
    """Create an empty file with a fresh random name in `folder`, with the mode the umask allows (0644 under 022)."""
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            # unlike tempfile.mkstemp (always 0600), mode 0666 minus the umask: colleagues can read the results
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path
    raise BrainmetsError(f"{folder}: could not create a temporary file beside the output")


def current_umask() -> int:
    """The process's file-mode creation mask (e.g. 0o022), read without changing it where Linux allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def make_folder(path: str | os.PathLike[str]) -> Path:
    """Create a folder and its missing parents (mode 0777 minus the umask, like mkdir); a fault is a StorageError."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where the folder belongs
        raise StorageError(folder, errno.ENOTDIR, "cannot create the folder") from None
    except OSError as error:
        raise _fault(error, folder, "cannot create the folder") from error
    return folder


def temporary_folder(parent: str | os.PathLike[str], prefix: str) -> Path:
    """A new empty folder with a fresh name in `parent`, with the mode the umask allows (0755 under 022).

    tempfile.mkdtemp always makes 0700: right for scratch space, wrong for a folder that is renamed into
    place as an output others should read.
    """
    folder = make_folder(parent)
    try:
        staging = Path(tempfile.mkdtemp(prefix=prefix, suffix=".part", dir=folder))
        staging.chmod(0o777 & ~current_umask())
    except OSError as error:
        raise _fault(error, folder, "cannot create a temporary folder") from error
    return staging


def write_failure_errno(folder: str | os.PathLike[str]) -> int:
    """The likely reason (errno) why a library that reports no errors wrote an incomplete file into `folder`."""
    try:
        disk = os.statvfs(folder)
    except OSError as error:
        return error.errno or errno.EIO
    if disk.f_flag & os.ST_RDONLY:
        return errno.EROFS
    if disk.f_bavail == 0 or disk.f_favail == 0:
        return errno.ENOSPC
    return errno.EIO


def _fault(error: BaseException, path: Path, action: str, temporary: Path | None = None) -> BaseException:
    """The StorageError for a fault while working on `path`, or the error itself when it is not a fault."""
    return storage_error(error, path, temporary=temporary, action=action) or error


@contextlib.contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[None]:
    """A block that reads `path`: a fault of the machine in it (failing storage, a permission, too many open
    files) is raised as a StorageError naming `path`, even where the library's error has no file name."""
    try:
        yield
    except Exception as error:
        raise_if_fault(error, path, "cannot read")
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds.

    A fault of the machine in the block (whatever library raised it, with or without the file's name)
    is raised as a StorageError naming `path`; the temporary file is removed in every case.
    """
    target = Path(path)
    make_folder(target.parent)
    # keep the suffixes so that libraries which infer the format from the name (.nii.gz) still work
    suffix = "".join(target.suffixes)
    try:
        tmp = _new_file(target.parent, f".{target.name}.", f".part{suffix}")
    except OSError as error:  # named after the output, not the temporary name the user never gave
        raise StorageError(target, error.errno, "cannot write") from error
    try:
        try:
            yield tmp
            os.replace(tmp, target)
        except Exception as error:
            fault = storage_error(error, target, temporary=tmp, action="cannot write")
            if fault is None:
                raise
            raise fault from error
    finally:
        with contextlib.suppress(OSError):  # on a failing disk the removal may fail too: the fault is reported
            tmp.unlink(missing_ok=True)


#: a 3x3 voxel-to-mm matrix whose |determinant| is below this fraction of the product of its column
#: lengths has (nearly) parallel axes: its voxels have no volume and its inverse is meaningless
SINGULAR_AFFINE_RATIO = 1e-6


def read_nifti_header(path: str | os.PathLike[str]) -> nib.Nifti1Header | nib.Nifti2Header:
    """The header of a NIfTI-1/2 file as stored (no data read), refused unless spacing and affine are usable.

    nibabel silently turns a zero or negative voxel spacing (pixdim) into a positive one when it loads a
    file, so the header is read here without its fixes. Refused: no NIfTI header, a spacing that is
    zero, negative, NaN or infinite, and an affine that is not finite or singular.
    """
    p = Path(path)
    if not p.is_file():
        raise BrainmetsError(f"{p}: file not found")
    with reading(p):
        block = _leading_bytes(p, nib.Nifti2Header.sizeof_hdr)
    header = None
    for header_class in (nib.Nifti1Header, nib.Nifti2Header):
        size = header_class.sizeof_hdr
        if len(block) >= size and size in (int.from_bytes(block[:4], "little"), int.from_bytes(block[:4], "big")):
            header = header_class(block[:size], check=False)
            break
    if header is None:
        raise BrainmetsError(f"{p}: not a readable NIfTI image (no NIfTI-1 or NIfTI-2 header)")
    spacing = np.asarray(header["pixdim"][1:4], dtype=float)
    if not (np.isfinite(spacing).all() and (spacing > 0).all()):
        shown = ", ".join(f"{v:g}" for v in spacing)
        raise BrainmetsError(
            f"{p}: voxel spacing ({shown}) mm in the header (pixdim) is not positive and finite; "
            "write the scan's true spacing into the header (e.g. convert the DICOM again)"
        )
    with np.errstate(all="ignore"):
        try:
            affine = np.asarray(header.get_best_affine(), dtype=float)
        except Exception as error:  # an invalid quaternion raises HeaderDataError
            problem = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise BrainmetsError(f"{p}: the header's affine cannot be computed ({problem}); fix the header") from None
        matrix = affine[:3, :3]
        lengths = np.sqrt((matrix**2).sum(axis=0))
        usable = np.isfinite(affine).all() and lengths.min() > 0
        if usable:
            usable = abs(np.linalg.det(matrix)) >= SINGULAR_AFFINE_RATIO * float(np.prod(lengths))
    if not usable:
        kind = "sform" if int(header["sform_code"]) > 0 else "qform" if int(header["qform_code"]) > 0 else "pixdim"
        raise BrainmetsError(
            f"{p}: the header's voxel-to-world affine ({kind}) is singular or not finite, so voxels have no "
            "position or size; write a valid sform or qform into the header"
        )
    return header


def _leading_bytes(path: Path, count: int) -> bytes:
    """The first `count` bytes of a file's content (fewer if it is shorter), gunzipped if it is gzip."""
    with path.open("rb") as handle:
        data = handle.read(count)
        if data[:2] != b"\x1f\x8b":
            return data
        inflate, content = zlib.decompressobj(wbits=31), b""
        try:
            while len(content) < count and data:
                content += inflate.decompress(data, count - len(content))
                data = inflate.unconsumed_tail or handle.read(1 << 16)
        except zlib.error as error:
            raise BrainmetsError(f"{path}: not a readable NIfTI image (damaged gzip stream: {error})") from None
    return content


def load_nifti(path: str | os.PathLike[str], *, allow_constant: bool = False) -> nib.Nifti1Image:
    """Load a 3-D NIfTI image, refusing unreadable, non-3-D, non-finite, constant or badly spaced data."""
    p = Path(path)
    read_nifti_header(p)
    try:
        img = nib.load(str(p))
        if isinstance(img, nib.Nifti1Image):  # NIfTI-2 images are Nifti1Image too; a .hdr/.img pair is not
            data = np.asanyarray(img.dataobj)
    except Exception as error:  # nibabel raises many types for corrupt input
        raise_if_fault(error, p, "cannot read")
        raise BrainmetsError(
            f"{p}: not a readable NIfTI image ({type(error).__name__}: {error})".splitlines()[0]
        ) from None
    if not isinstance(img, nib.Nifti1Image):
        raise BrainmetsError(f"{p}: not a single-file NIfTI image; convert it to .nii or .nii.gz")
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
        img = nib.Nifti1Image(data, img.affine, img.header)
    if data.ndim != 3:
        raise BrainmetsError(f"{p}: expected a 3-D volume, found shape {tuple(data.shape)}")
    if min(data.shape) < 2:
        raise BrainmetsError(f"{p}: expected a 3-D volume, found a single slice of shape {tuple(data.shape)}")
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise BrainmetsError(f"{p}: contains NaN or infinite voxels; fix or mask them before running")
    if not allow_constant and data.min() == data.max():
        raise BrainmetsError(f"{p}: every voxel has the same value ({data.min()}); this is not an image")
    spacing = voxel_spacing_mm(img.affine)
    low, high = SPACING_RANGE_MM
    if not np.all(np.isfinite(spacing)) or spacing.min() < low or spacing.max() > high:
        raise BrainmetsError(
            f"{p}: voxel spacing {tuple(np.round(spacing, 4))} mm is outside {low}-{high} mm; check the header's affine"
        )
    return img


def check_gzip_stream(path: str | os.PathLike[str]) -> None:
    """Decompress a .gz file to its end, verifying its checksum and length (nibabel stops where the data ends)."""
    p = Path(path)
    if not p.name.endswith(".gz"):
        return
    try:
        with gzip.open(p, "rb") as stream:
            while stream.read(1 << 24):
                pass
    except (OSError, EOFError, zlib.error) as error:
        raise_if_fault(error, p, "cannot read")
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BrainmetsError(f"{p}: not a readable NIfTI image (damaged gzip stream: {problem})") from None


def voxel_spacing_mm(affine: np.ndarray) -> np.ndarray:
    """Voxel edge lengths (mm) along the three array axes of an affine."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def float_triple(values: Iterable[Any]) -> tuple[float, float, float]:
    """Three values (a spacing in mm, a position) as three Python floats; ValueError unless there are three."""
    a, b, c = (float(v) for v in values)
    return a, b, c


def int_triple(values: Iterable[Any]) -> tuple[int, int, int]:
    """Three values (a shape or patch size in voxels) as three Python ints; ValueError unless there are three."""
    a, b, c = (int(v) for v in values)
    return a, b, c


class Grid(Protocol):
    """Anything with a voxel grid: a 3-D shape and a 4x4 voxel-to-world affine (mm), e.g. a NIfTI image."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def affine(self) -> np.ndarray: ...


#: two affines whose entries agree to this (mm) describe the same grid
AFFINE_TOLERANCE_MM = 1e-3


def same_grid(affine_a: np.ndarray, shape_a: tuple[int, ...], affine_b: np.ndarray, shape_b: tuple[int, ...]) -> bool:
    """True when two grids have the same shape and affines equal to AFFINE_TOLERANCE_MM (mm)."""
    return tuple(shape_a) == tuple(shape_b) and np.allclose(affine_a, affine_b, atol=AFFINE_TOLERANCE_MM)


def corner_offset_mm(affine_a: np.ndarray, affine_b: np.ndarray, shape: tuple[int, ...]) -> float:
    """Largest distance (mm) between where two affines place the eight corner voxels of a grid of `shape`."""
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in shape[:3]], indexing="ij")).reshape(3, -1).T
    return float(
        np.linalg.norm(
            nib.affines.apply_affine(affine_a, corners) - nib.affines.apply_affine(affine_b, corners), axis=1
        ).max()
    )


def check_same_grid(
    reference: Grid,
    other: Grid,
    reference_path: str | os.PathLike[str],
    other_path: str | os.PathLike[str],
    fix: str,
    *,
    tolerance_mm: float | None = None,
) -> None:
    """Refuse `other` unless it has the reference's shape and affine, naming both files and `fix`.

    Affines match when their entries agree to AFFINE_TOLERANCE_MM, or, when `tolerance_mm` is given,
    when no corner voxel lies further than `tolerance_mm` (mm) from its place on the reference grid.
    """
    shape, reference_shape = tuple(other.shape[:3]), tuple(reference.shape[:3])
    if shape != reference_shape:
        raise BrainmetsError(
            f"{other_path}: grid {shape} does not match: its shape differs from that of {reference_path} "
            f"{reference_shape}; {fix}"
        )
    if tolerance_mm is None:
        matches = same_grid(other.affine, shape, reference.affine, reference_shape)
        allowed = ""
    else:
        matches = corner_offset_mm(reference.affine, other.affine, shape) <= tolerance_mm
        allowed = f", more than the {tolerance_mm:.3g} mm allowed"
    if not matches:
        offset_mm = corner_offset_mm(reference.affine, other.affine, shape)
        raise BrainmetsError(
            f"{other_path}: grid {shape} does not match: its affine differs from that of {reference_path} "
            f"(voxels up to {offset_mm:.3g} mm apart{allowed}); {fix}"
        )


def load_mask(path: str | os.PathLike[str], *, labels: bool = False) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Load a lesion mask as (boolean array, image); an empty mask is valid.

    With `labels=False` every voxel must be 0 or 1; with `labels=True` a label map of non-negative
    integers is accepted too (every positive label is lesion).
    """
    img = load_nifti(path, allow_constant=True)
    data = np.asanyarray(img.dataobj)
    if labels:
        valid = (data >= 0) & (data == np.round(data))
        if not valid.all():
            values = np.unique(data[~valid])
            shown = ", ".join(f"{v:g}" for v in values[:5]) + (", ..." if values.size > 5 else "")
            raise BrainmetsError(
                f"{path}: a mask must hold 0 (background) and positive integers (lesion), found {shown}; "
                "threshold probability maps (e.g. > 0.5) before evaluating"
            )
        return data > 0, img
    binary = (data == 0) | (data == 1)
    if not binary.all():
        values = np.unique(data[~binary])[:5]
        raise BrainmetsError(
            f"{Path(path)}: not a binary mask (found values {', '.join(f'{v:g}' for v in values)} besides 0 and 1); "
            "threshold or binarise it first"
        )
    return data == 1, img


def voxel_volume_ml(affine_or_spacing: np.ndarray | Sequence[float]) -> float:
    """Volume of one voxel in millilitres, from a 4x4 affine (|det|) or from three edge lengths in mm."""
    values = np.asarray(affine_or_spacing, dtype=float)
    if values.shape == (4, 4):
        return abs(float(np.linalg.det(values[:3, :3]))) / 1000.0
    return float(np.prod(values)) / 1000.0


def save_nifti(data: np.ndarray, affine: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write an array with its affine as NIfTI, atomically; returns the path."""
    array = np.asarray(data)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    # NIfTI stores voxels in Fortran order: nibabel writes a C-ordered array slice by slice, 1.3x (float32)
    # to 3x (uint8) slower than one copy into Fortran order first; the file is the same
    img = nib.Nifti1Image(np.asfortranarray(array), np.asarray(affine, dtype=np.float64))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)


def write_tsv(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a table as tab-separated text, atomically; returns the path."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    return Path(path)


def table_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a table whose columns are named by text, as dicts (column name -> value)."""
    return [{str(name): value for name, value in row.items()} for row in table.to_dict("records")]


def read_tsv(
    path: str | os.PathLike[str], required: list[str] | None = None, text_columns: Sequence[str] = ()
) -> pd.DataFrame:
    """Read a tab-separated table, checking that the required columns are present.

    Columns named in `text_columns` keep the text as written (`007` stays `007`, `NA` and empty cells
    stay strings); the others are parsed by pandas as usual.
    """
    p = Path(path)
    if not p.is_file():
        raise BrainmetsError(f"{p}: file not found")
    try:
        table = pd.read_csv(p, sep="\t", converters={column: str for column in text_columns})
    except Exception as error:
        raise_if_fault(error, p, "cannot read")
        raise BrainmetsError(f"{p}: not a readable tab-separated table ({error})".splitlines()[0]) from None
    missing = [c for c in (required or []) if c not in table.columns]
    if missing:
        raise BrainmetsError(f"{p}: missing column(s) {', '.join(missing)}; found {', '.join(table.columns)}")
    return table


def _read_mapping(
    path: str | os.PathLike[str],
    parse: Callable[[str], Any],
    errors: tuple[type[Exception], ...],
    kind: str,
    expected: str,
    allow_empty: bool = False,
) -> dict[str, Any]:
    """Parse a text file that must hold a mapping, raising BrainmetsError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise BrainmetsError(f"{p}: file not found")
    try:
        with reading(p):
            data = parse(p.read_text())
    except errors as error:
        raise BrainmetsError(f"{p}: not valid {kind} ({str(error).splitlines()[0]})") from None
    if data is None and allow_empty:
        return {}
    if not isinstance(data, dict):
        raise BrainmetsError(f"{p}: expected {expected}")
    return data


def read_yaml(path: str | os.PathLike[str], *, allow_empty: bool = False) -> dict[str, Any]:
    """Read a YAML mapping (an empty file is {} when `allow_empty`), or raise BrainmetsError naming the file."""
    return _read_mapping(
        path, yaml.safe_load, (yaml.YAMLError,), "YAML", "a mapping of keys to values at the top level", allow_empty
    )


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON object, or raise BrainmetsError naming the file."""
    return _read_mapping(path, json.loads, (json.JSONDecodeError, UnicodeDecodeError), "JSON", "a JSON object")


def write_json(data: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a JSON document (indented, newline-terminated) atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return Path(path)

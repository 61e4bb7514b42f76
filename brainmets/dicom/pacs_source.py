"""A DICOMweb archive as the source of scans: a sample sheet from its QIDO-RS answers, series fetched with WADO-RS.

`archive_sheet` builds the sample sheet of `brainmets dicom-sheet --dicomweb`: for each patient it
finds the studies (QIDO-RS), reads the headers of every series (WADO-RS metadata, no pixel data),
writes them as header-only files into a temporary tree and hands that tree to `dicom_sheet`, so the
picking is exactly the one of a DICOM folder. The sheet names each study and series by UID.

`fetch_series` retrieves one series into a resumable cache: each instance is written atomically as
<SOPInstanceUID>.dcm and its size recorded; a rerun skips instances whose file, size and UID match.
The series becomes a complete folder (hard links into the cache, plus a manifest) only when every
instance the archive lists is there and the listing has not changed meanwhile.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from brainmets.dicom.dicomweb import MANIFEST, Archive, value
from brainmets.errors import BrainmetsError

#: DICOM JSON tags used here
STUDY_UID, SERIES_UID, SOP_UID, SOP_CLASS, PATIENT_ID = "0020000D", "0020000E", "00080018", "00080016", "00100020"
#: file in a cached series folder listing each stored instance and its size in bytes
SIZES = ".sizes.tsv"


def is_image_class(sop_class_uid: str) -> bool:
    """Whether a SOP Class UID is an image storage class (MR, CT, enhanced, ...), not SR, SEG or a state."""
    from pydicom.uid import UID

    return "Image Storage" in UID(sop_class_uid).name and "Presentation" not in UID(sop_class_uid).name


def _class_name(sop_class_uid: str) -> str:
    """The name of a SOP class, or its UID when unknown."""
    from pydicom.uid import UID

    return UID(sop_class_uid).name or sop_class_uid or "unknown SOP class"


def _picking_tags() -> set[str]:
    """The DICOM JSON tags (8 hex digits) the picking reads (`dicom-sheet`'s TAGS) and the instance's own UIDs."""
    from pydicom.datadict import tag_for_keyword

    from brainmets.dicom.sheet import TAGS

    return {f"{tag_for_keyword(k):08X}" for k in [*TAGS, "SOPInstanceUID"]}


def _header_file(record: dict[str, Any], path: Path) -> None:
    """Write the attributes the picking reads of one DICOM JSON instance (no pixels) as a DICOM file."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    tags = _picking_tags()
    header = {tag: item for tag, item in record.items() if tag.upper() in tags and "BulkDataURI" not in item}
    ds = pydicom.Dataset.from_json(header)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", "1.2.840.10008.5.1.4.1.1.4")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "1.2.3")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _study_tree(archive: Archive, study_uid: str, root: Path) -> None:
    """Header-only files of every series of one study under root/<study>/<series>/ (checked to be that study)."""
    for series in archive.find_series(study_uid):
        series_uid = value(series, SERIES_UID)
        for number, record in enumerate(archive.series_metadata(study_uid, series_uid)):
            if value(record, STUDY_UID) != study_uid:
                raise archive.fail(
                    f"study {study_uid}: the archive answered with study {value(record, STUDY_UID) or '(none)'} "
                    f"for series {series_uid}; refused"
                )
            _header_file(record, root / study_uid / series_uid / f"{number:05d}.dcm")


def archive_sheet(
    archive: Archive, patient_ids: Iterable[str], since: str | None = None, until: str | None = None
) -> Any:
    """The `dicom_sheet` result for the studies of `patient_ids` on the archive (StudyDate since/until, ISO)."""
    from brainmets.dicom.sheet import SheetResult, dicom_sheet

    patients = list(patient_ids)
    dates = ""
    if since or until:
        dates = f"{(since or '').replace('-', '')}-{(until or '').replace('-', '')}"
    missing = []
    with tempfile.TemporaryDirectory(prefix="brainmets-qido-") as tmp:
        root = Path(tmp)
        for patient in patients:
            filters = {"PatientID": patient, **({"StudyDate": dates} if dates else {})}
            studies = archive.find_studies(filters)
            for study in studies:
                if value(study, PATIENT_ID) not in ("", patient):
                    raise archive.fail(
                        f"search for patient {patient}: the archive answered with patient {value(study, PATIENT_ID)}; "
                        "refused"
                    )
                _study_tree(archive, value(study, STUDY_UID), root)
            if not studies:
                missing.append(patient)
        if missing and len(missing) == len(patients):
            raise archive.fail(
                f"no study of patient(s) {', '.join(missing)} on the archive{' in ' + dates if dates else ''}"
            )
        result = dicom_sheet(root)
    series = result.series.copy()
    series["folder"] = [f"{s}/{r}" for s, r in zip(series["study_uid"], series["series_uid"], strict=True)]
    study_of = dict(zip(series["series_uid"], series["study_uid"], strict=True))
    sheet = pd.DataFrame(
        {
            "patient_id": result.sheet["patient_id"],
            "timepoint": result.sheet["timepoint"],
            "study_uid": [study_of[uid] for uid in result.sheet["series_uid"]],
            "series_uid": result.sheet["series_uid"],
        }
    )
    ambiguous = result.ambiguous + [f"{p}: no study on the archive" for p in missing]
    return SheetResult(sheet, series, ambiguous, 0)


def pick_series(archive: Archive, study_uid: str) -> str:
    """The post-contrast T1 series of one study on the archive, picked as `dicom-sheet` picks it."""
    from brainmets.dicom.sheet import dicom_sheet

    archive.check_study(study_uid)
    with tempfile.TemporaryDirectory(prefix="brainmets-qido-") as tmp:
        _study_tree(archive, study_uid, Path(tmp))
        result = dicom_sheet(tmp)
    if result.sheet.empty:
        raise archive.fail(
            f"study {study_uid}: no post-contrast T1 series found by the picking rules; "
            "name it in the sheet's series_uid"
        )
    return str(result.sheet["series_uid"].iloc[0])


def _listing(archive: Archive, study_uid: str, series_uid: str) -> dict[str, str]:
    """SOP Instance UID -> SOP Class UID of every instance the archive lists in a series (checked)."""
    listed = archive.find_instances(study_uid, series_uid)
    if not listed:
        raise archive.fail(f"study {study_uid}: no series {series_uid} on the archive; check the sheet's series_uid")
    instances = {}
    for record in listed:
        sop, sop_class = value(record, SOP_UID), value(record, SOP_CLASS)
        answered = value(record, STUDY_UID)
        if answered and answered != study_uid:
            raise archive.fail(f"study {study_uid}: the archive listed instance {sop} of study {answered}; refused")
        if sop_class and not is_image_class(sop_class):
            raise archive.fail(
                f"study {study_uid}: series {series_uid} holds a non-image object ({_class_name(sop_class)}, "
                f"instance {sop}); give the series_uid of the T1-CE image series"
            )
        instances[sop] = sop_class
    return instances


def _read_sizes(folder: Path) -> dict[str, int]:
    """SOP Instance UID -> size in bytes of the instances recorded in a cache folder."""
    sizes: dict[str, int] = {}
    path = folder / SIZES
    if path.exists():
        for line in path.read_text().splitlines():
            sop, _, size = line.partition("\t")
            if size.isdigit():
                sizes[sop] = int(size)
    return sizes


def _cached(folder: Path, sop: str, sizes: dict[str, int]) -> bool:
    """Whether <sop>.dcm is in the cache whole: its recorded size matches and its header names that instance."""
    import pydicom

    path = folder / f"{sop}.dcm"
    if sop not in sizes or not path.is_file() or path.stat().st_size != sizes[sop]:
        return False
    try:
        return (
            str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID) == sop
        )
    except Exception:  # pydicom raises many types for a damaged file
        return False


def _store_instance(archive: Archive, ds: Any, study_uid: str, series_uid: str, sop: str, folder: Path) -> None:
    """Check a retrieved instance is the one asked for and an image, then write it atomically and record its size."""
    from brainmets.io import atomic_path

    got = (str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", "")), str(ds.get("SOPInstanceUID", "")))
    if got[0] != study_uid:
        raise archive.fail(
            f"study {study_uid}: the archive answered instance {sop} with study {got[0] or '(none)'}; refused"
        )
    if got[1:] != (series_uid, sop):
        raise archive.fail(
            f"study {study_uid}: asked for instance {sop} of series {series_uid}, "
            f"got {got[2]} of series {got[1]}; refused"
        )
    sop_class = str(ds.get("SOPClassUID", ""))
    if not is_image_class(sop_class):
        raise archive.fail(f"study {study_uid}: instance {sop} is not an image ({_class_name(sop_class)}); refused")
    target = folder / f"{sop}.dcm"
    with atomic_path(target) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    with open(folder / SIZES, "a") as index:
        index.write(f"{sop}\t{target.stat().st_size}\n")


def cache_folder(cache: str | os.PathLike[str], study_uid: str, series_uid: str) -> Path:
    """Where the instances of one series are cached: <cache>/instances/<study>/<series>."""
    return Path(cache) / "instances" / study_uid / series_uid


def fetch_series(
    archive: Archive,
    study_uid: str,
    series_uid: str | None,
    cache: str | os.PathLike[str],
    out: str | os.PathLike[str],
    after_each: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Retrieve one series (the picked one when `series_uid` is None) into the cache, then `out` as a complete folder.

    Returns the manifest written into `out`. `after_each(sop_uid)` runs after each fetched instance.
    """
    from brainmets.io import write_json

    archive.check_study(study_uid)
    series_uid = series_uid or pick_series(archive, study_uid)
    listed = _listing(archive, study_uid, series_uid)
    folder = cache_folder(cache, study_uid, series_uid)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = _read_sizes(folder)
    cached = {sop for sop in listed if _cached(folder, sop, sizes)}
    fetched = 0
    for sop in sorted(set(listed) - cached):
        _store_instance(archive, archive.retrieve(study_uid, series_uid, sop), study_uid, series_uid, sop, folder)
        fetched += 1
        if after_each is not None:
            after_each(sop)
    now = _listing(archive, study_uid, series_uid)
    if set(now) != set(listed):
        raise archive.fail(
            f"study {study_uid}: series {series_uid} changed on the archive while it was fetched "
            f"({len(listed)} instances listed, {len(now)} now); nothing taken as complete, run again to fetch the rest"
        )
    sizes = _read_sizes(folder)
    absent = [sop for sop in listed if not _cached(folder, sop, sizes)]
    if absent:
        raise archive.fail(
            f"study {study_uid}: series {series_uid}: {len(absent)} instances missing after the fetch; run again"
        )
    manifest = {
        "archive": archive.shown,
        "study_uid": study_uid,
        "series_uid": series_uid,
        "instances": {sop: sizes[sop] for sop in sorted(listed)},
        "fetched_now": fetched,
        "cached_before": len(cached),
    }
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the folder follows the user's umask
    try:
        for sop in sorted(listed):
            try:
                os.link(folder / f"{sop}.dcm", staging / f"{sop}.dcm")
            except OSError:  # another file system: copy
                shutil.copy2(folder / f"{sop}.dcm", staging / f"{sop}.dcm")
        write_json(manifest, staging / MANIFEST)
        if target.exists():
            if not (target / MANIFEST).is_file():
                raise BrainmetsError(f"{target}: exists and is not a fetched series folder; give another --out")
            shutil.rmtree(target)
        os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    print(
        f"{archive.shown}: study {study_uid} series {series_uid}: {len(listed)} instances complete in {target} "
        f"({fetched} fetched now, {len(cached)} from the cache)"
    )
    return manifest


def archive_sheet_command(args: Any) -> Any:
    """`dicom-sheet --dicomweb URL --patient-id ID ...`: the sheet from the archive's answers (checked arguments)."""
    from brainmets.config import read_section
    from brainmets.dicom.dicomweb import archive_for

    if not args.patient_id:
        raise BrainmetsError("--dicomweb needs at least one --patient-id to search the archive for")
    if args.root is not None:
        raise BrainmetsError(f"{args.root}: give either a DICOM folder or --dicomweb, not both")
    archive = archive_for(args.dicomweb, read_section(args.config, "dicomweb"))
    return archive_sheet(archive, args.patient_id, args.since, args.until)

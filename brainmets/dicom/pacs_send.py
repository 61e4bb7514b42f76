"""A DICOMweb archive as the destination of results: a scan's SEG, SR and parametric maps stored with STOW-RS.

`send_objects` asks the archive (QIDO-RS) which of the objects it already holds, stores the others
(STOW-RS, one request per study), checks the archive's answer and asks again that every object is now
held. The objects' UIDs are deterministic (derived from the source series and the content), so sending
the same results twice adds nothing: the second time every object is "already held". The receipt
records, per object, its file, class, UIDs and status, and the archive's URL without credentials.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from brainmets.dicom.dicomweb import Archive
from brainmets.dicom.pacs_source import _class_name
from brainmets.errors import BrainmetsError

#: the receipt's name beside the objects of one scan
RECEIPT = "sent.json"
#: the SOP classes send stores besides structured reports: what dicom-export writes, never images
RESULT_CLASSES = {"Segmentation Storage", "Parametric Map Storage"}


def result_objects(folder: str | os.PathLike[str]) -> list[Path]:
    """The DICOM objects (*.dcm) directly in one scan's DICOM output folder, sorted."""
    return sorted(p for p in Path(folder).glob("*.dcm") if not p.name.startswith("."))


def _held(archive: Archive, study_uid: str, sop_uid: str) -> bool:
    """Whether the archive lists an instance with this SOP Instance UID in the study (QIDO-RS)."""
    found = archive.call(
        f"study {study_uid}: search for instance {sop_uid}",
        lambda: archive.client.search_for_instances(
            study_instance_uid=study_uid, search_filters={"SOPInstanceUID": sop_uid}
        ),
    )
    return bool(found)


def send_objects(archive: Archive, files: list[Path]) -> dict[str, Any]:
    """Store the objects the archive does not hold yet (STOW-RS); the receipt of what it holds now."""
    import pydicom

    if not files:
        raise BrainmetsError(
            "no DICOM objects to send; give the folder that holds segmentation.dcm, measurements.dcm, ..."
        )
    objects = []
    for path in files:
        try:
            ds = pydicom.dcmread(path)
        except Exception as error:  # pydicom raises many types for damaged files
            raise BrainmetsError(
                f"{path}: not readable as DICOM ({type(error).__name__}); run dicom-export again"
            ) from None
        kind = _class_name(str(ds.get("SOPClassUID", "")))
        if kind not in RESULT_CLASSES and not kind.endswith("SR Storage"):
            raise BrainmetsError(
                f"{path}: a {kind} object; send stores results only (segmentations, measurement reports, "
                "parametric maps), never images"
            )
        objects.append((path, ds))
    entries = []
    by_study: dict[str, list[Any]] = {}
    for path, ds in objects:
        study, sop = str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)
        held = _held(archive, study, sop)
        entries.append(
            {
                "file": path.name,
                "sop_class": _class_name(str(ds.SOPClassUID)),
                "sop_instance_uid": sop,
                "series_instance_uid": str(ds.SeriesInstanceUID),
                "study_instance_uid": study,
                "status": "already held" if held else "stored",
            }
        )
        if not held:
            by_study.setdefault(study, []).append(ds)
    for study, datasets in by_study.items():
        answer = archive.store(study, datasets)
        failed = [
            f"{item.get('ReferencedSOPInstanceUID', '?')} (reason {item.get('FailureReason', '?')})"
            for item in answer.get("FailedSOPSequence", [])
        ]
        if failed:
            raise archive.fail(f"study {study}: the archive refused {len(failed)} object(s): {'; '.join(failed)}")
    missing = [
        e["file"]
        for e in entries
        if e["status"] == "stored" and not _held(archive, e["study_instance_uid"], e["sop_instance_uid"])
    ]
    if missing:
        raise archive.fail(f"stored {', '.join(missing)}, but the archive does not list them afterwards; send again")
    return {"archive": archive.shown, "objects": entries}


def send_folder(
    archive: Archive, folder: str | os.PathLike[str], receipt: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Send one scan's DICOM outputs and write its receipt (default <folder>/sent.json); returns the receipt."""
    from brainmets.io import write_json

    done = send_objects(archive, result_objects(folder))
    target = Path(receipt) if receipt else Path(folder) / RECEIPT
    write_json(done, target)
    stored = sum(e["status"] == "stored" for e in done["objects"])
    print(
        f"{archive.shown}: {folder}: {stored} object(s) stored, {len(done['objects']) - stored} already held; "
        f"receipt {target}"
    )
    return done

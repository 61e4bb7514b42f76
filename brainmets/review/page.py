"""The review page of one patient: one self-contained HTML file that opens from the file system.

Every visit is shown side by side in NiiVue (the viewer's browser bundle is inlined, so nothing is
fetched when the page opens; a page opened from file:// could not read other local files anyway).
The volumes are embedded as base64 gzipped NIfTI on the patient-space grid, cropped to the box of the
brain masks of all visits (one box for every visit, so that a position in mm is the same voxel everywhere):
- the skull-stripped T1-CE, its intensities scaled to 0-255 at each visit's 99.5th brain percentile (uint8);
- the tracked lesion ids (uint8, uint16 beyond 255 ids), coloured by a fixed colour per id;
- the total-entropy map, 0-1 bit in steps of 1/255 (uint8 with scl_slope).
The demo's 1.5 mm grid gives about 0.3-0.5 MB per visit on top of the viewer's 2.3 MB.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from brainmets.errors import BrainmetsError
from brainmets.io import atomic_path, check_same_grid, load_nifti, read_tsv, table_records
from brainmets.rano.settings import RanoSettings
from brainmets.review.flags import REVIEW_LESION_COLUMNS, flag_lesions
from brainmets.review.settings import ReviewSettings

#: where `make env` installs the viewer (npm ci from viewer/package-lock.json), relative to the repository
NIIVUE_PACKAGE = Path("viewer/node_modules/@niivue/niivue")
#: the package's standalone browser bundle (UMD: defines the global `niivue`)
NIIVUE_BUNDLE = "dist/niivue.umd.js"
#: environment variable that names another NiiVue package folder
NIIVUE_VARIABLE = "BRAINMETS_NIIVUE"
#: NiiVue's licence, shipped with the page that inlines it
NIIVUE_LICENSE = Path("viewer/NIIVUE-LICENSE")

#: lesion colours by id (id k takes colour (k - 1) mod n): distinct hues that stay apart on grey scans
LESION_COLOURS: list[str] = [
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
    "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3",
    "#808000", "#ffd8b1", "#000075", "#ff7f50",
]  # fmt: skip
#: colour of a rejected lesion
REJECTED_COLOUR = "#808080"
#: voxels of margin around the brain box
BOX_MARGIN_VOX = 2
#: brain percentile mapped to 255 in the embedded T1-CE
T1_PERCENTILE = 99.5

#: colour of each overall response on the timeline
RESPONSE_COLOURS = {"BL": "#4d4d4d", "CR": "#1a9850", "PR": "#66bd63", "SD": "#fdae61", "non-CR/non-PD": "#fdae61",
                    "PD": "#d73027"}  # fmt: skip


#: response-table columns read as text (NA is a response category, not a missing value)
RESPONSE_TEXT_COLUMNS = ["patient_id", "timepoint", "target_ids", "target_response", "nontarget_response",
                         "overall_response", "assessment", "review"]  # fmt: skip


def lesion_colour(lesion_id: int) -> str:
    """The fixed colour (#rrggbb) of a persistent lesion id, the same at every visit."""
    return LESION_COLOURS[(int(lesion_id) - 1) % len(LESION_COLOURS)]


def repository_root() -> Path:
    """The folder that holds the package (the repository of an editable install)."""
    return Path(__file__).resolve().parents[2]


def niivue_package() -> Path:
    """The installed NiiVue package folder: $BRAINMETS_NIIVUE, else the one `make env` installs."""
    given = os.environ.get(NIIVUE_VARIABLE)
    return Path(given) if given else repository_root() / NIIVUE_PACKAGE


def read_niivue(package: Path | None = None) -> tuple[str, str, str]:
    """NiiVue's browser bundle, version and licence text; refused in one line when `make env` did not install it."""
    folder = package or niivue_package()
    bundle = folder / NIIVUE_BUNDLE
    if not bundle.is_file():
        raise BrainmetsError(
            f"{bundle}: NiiVue's browser bundle is missing; run `make env` (it installs the viewer with npm from "
            f"viewer/package-lock.json) or set {NIIVUE_VARIABLE} to an installed @niivue/niivue package"
        )
    version = json.loads((folder / "package.json").read_text()).get("version", "?")
    licence = repository_root() / NIIVUE_LICENSE
    text = licence.read_text() if licence.is_file() else "BSD-2-Clause (see the @niivue/niivue package)"
    return bundle.read_text(encoding="utf-8"), version, text


@dataclass
class VisitVolumes:
    """The arrays of one visit on the patient-space grid: T1-CE brain, tracked lesion ids, total entropy (bits)."""

    timepoint: str
    brain: np.ndarray
    labels: np.ndarray
    entropy: np.ndarray


def load_visits(patient_dir: Path, timepoints: Sequence[str]) -> tuple[list[VisitVolumes], np.ndarray]:
    """Each visit's brain, tracked ids and entropy map (all on one grid) and that grid's affine."""
    visits, reference = [], None
    for t in timepoints:
        paths = {
            "brain": patient_dir / t / "brain.nii.gz",
            "labels": patient_dir / "tracked" / f"{t}.nii.gz",
            "entropy": patient_dir / t / "uncertainty_total_entropy.nii.gz",
        }
        arrays = {}
        for name, path in paths.items():
            img = load_nifti(path, allow_constant=True)
            if reference is None:
                reference = (img, path)
            check_same_grid(reference[0], img, reference[1], path, "every visit must be on the patient-space grid")
            arrays[name] = np.asarray(img.dataobj)
        visits.append(VisitVolumes(t, arrays["brain"], arrays["labels"].astype(np.int32), arrays["entropy"]))
    if reference is None:
        raise BrainmetsError(f"{patient_dir}: no visits to show")
    return visits, np.asarray(reference[0].affine, dtype=float)


def brain_box(visits: Sequence[VisitVolumes], margin: int = BOX_MARGIN_VOX) -> tuple[slice, ...]:
    """The box (slices) holding every visit's brain and lesions, widened by `margin` voxels; the whole grid if empty."""
    shape = visits[0].brain.shape
    inside = np.zeros(shape, dtype=bool)
    for visit in visits:
        inside |= (visit.brain != 0) | (visit.labels > 0)
    if not inside.any():
        return tuple(slice(0, n) for n in shape)
    box = ndimage.find_objects(inside.astype(np.uint8))[0]
    return tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(box, shape, strict=True))


def nifti_base64(data: np.ndarray, affine: np.ndarray, slope: float = 1.0) -> str:
    """A volume as base64 text of a gzipped NIfTI-1 file (qform and sform = affine, optional scl_slope)."""
    img = nib.Nifti1Image(np.asfortranarray(data), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_slope_inter(slope, 0.0)
    return base64.b64encode(gzip.compress(img.to_bytes(), compresslevel=9, mtime=0)).decode("ascii")


def mean_entropy_by_lesion(visits: Sequence[VisitVolumes]) -> dict[tuple[str, int], float]:
    """(timepoint, lesion id) -> mean total entropy (bits) over the lesion's voxels at that visit."""
    means: dict[tuple[str, int], float] = {}
    for visit in visits:
        ids = np.unique(visit.labels[visit.labels > 0])
        if ids.size:
            values = ndimage.mean(visit.entropy.astype(np.float64), visit.labels, ids)
            means.update({(visit.timepoint, int(i)): float(v) for i, v in zip(ids, np.atleast_1d(values), strict=True)})
    return means


def encode_visit(visit: VisitVolumes, box: tuple[slice, ...], affine: np.ndarray) -> dict[str, str]:
    """The embedded volumes of one visit, cropped to `box`: T1-CE (uint8), lesion ids, entropy (uint8, 1/255 bit)."""
    start = np.array([s.start for s in box], dtype=float)
    crop_affine = affine.copy()
    crop_affine[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
    brain = visit.brain[box].astype(np.float32)
    inside = brain[brain > 0]
    top = float(np.percentile(inside, T1_PERCENTILE)) if inside.size else 1.0
    t1 = np.clip(np.rint(brain / (top or 1.0) * 255.0), 0, 255).astype(np.uint8)
    labels = visit.labels[box]
    labels = labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint16)
    entropy = np.clip(np.rint(visit.entropy[box].astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return {
        "t1": nifti_base64(t1, crop_affine),
        "labels": nifti_base64(labels, crop_affine),
        "entropy": nifti_base64(entropy, crop_affine, slope=1.0 / 255.0),
    }


def timeline_svg(response: pd.DataFrame, width: int = 820, height: int = 220) -> str:
    """The RANO-BM timeline as inline SVG: sum of target LDs (mm) per visit, each visit's response and confirmation."""
    rows = response.sort_values("timepoint", kind="stable")
    days = rows["days_from_baseline"].to_numpy(dtype=float)
    sums = pd.to_numeric(rows["sum_ld_mm"], errors="coerce").to_numpy(dtype=float)
    left, right, top, bottom = 60, 110, 34, 50
    span = max(float(days.max(initial=0)), 1.0)
    peak = max(float(np.nanmax(sums)) if np.isfinite(sums).any() else 0.0, 1.0) * 1.15

    def x(d: float) -> float:
        return left + (width - left - right) * d / span

    def y(v: float) -> float:
        return height - bottom - (height - top - bottom) * v / peak

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline-svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>',
        f'<text x="12" y="{top + 8}" fill="#ccc">mm</text>',
        f'<text x="{left + 10}" y="{top - 6}" fill="#ccc">sum of target longest diameters</text>',
    ]
    for tick in np.linspace(0, peak, 4):
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" fill="#ccc">{tick:.0f}</text>')
    points = [(x(d), y(v)) for d, v in zip(days, sums, strict=True) if np.isfinite(v)]
    if len(points) > 1:
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#9ecae1" stroke-width="2"/>')
    for index, (record, d, v) in enumerate(zip(table_records(rows), days, sums, strict=True)):
        response_text = str(record.get("overall_response") or "")
        if response_text in ("", "nan"):
            response_text = str(record.get("assessment") or "")
        colour = RESPONSE_COLOURS.get(response_text, "#999")
        cy = y(v) if np.isfinite(v) else height - bottom
        label = response_text + (" (confirmed)" if bool(record.get("confirmed")) else "")
        title = html.escape(
            f"{record['timepoint']}: sum {v:.1f} mm, {label}" if np.isfinite(v) else f"{record['timepoint']}: {label}"
        )
        parts.append(
            f'<g class="visit-point" data-timepoint="{html.escape(str(record["timepoint"]))}"><title>{title}</title>'
            f'<circle cx="{x(d):.1f}" cy="{cy:.1f}" r="6" fill="{colour}"/>'
            f'<text x="{x(d) + (8 if index == 0 else 0):.1f}" y="{cy - 10:.1f}" '
            f'text-anchor="{"start" if index == 0 else "middle"}" fill="{colour}">{html.escape(label)}</text>'
            f'<text x="{x(d):.1f}" y="{height - bottom + 16}" text-anchor="middle" fill="#ccc">'
            f"{html.escape(str(record['timepoint']))}</text>"
            f'<text x="{x(d):.1f}" y="{height - bottom + 30}" text-anchor="middle" fill="#888">day {d:.0f}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _json_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Table rows as JSON-ready dicts (NaN -> None)."""
    clean = table.astype(object).where(table.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in clean.to_dict("records")]


def read_review_rows(path: Path) -> list[dict[str, str]]:
    """The rows of an existing review.tsv as text (so that the page starts from the decisions already made)."""
    if not path.is_file():
        return []
    table = read_tsv(path, text_columns=["lesion_id", "timepoint", "decision", "into"])
    return [{k: str(v) for k, v in row.items()} for row in table_records(table.fillna(""))]


def build_review_page(
    patient_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    patient: str | None = None,
    clinical: pd.DataFrame | None = None,
    settings: ReviewSettings | None = None,
    rano_settings: RanoSettings | None = None,
    niivue: Path | None = None,
) -> dict[str, int]:
    """Write the review page of a patient folder (lesions.tsv, rano_response.tsv, visit maps); returns sizes (bytes)."""
    folder = Path(patient_dir)
    patient = patient or folder.resolve().name
    bundle, version, licence = read_niivue(niivue)
    lesions = read_tsv(folder / "lesions.tsv", text_columns=["patient_id", "timepoint", "review"])
    response = read_tsv(folder / "rano_response.tsv", text_columns=RESPONSE_TEXT_COLUMNS)
    timepoints = sorted(lesions["timepoint"].astype(str).unique())
    visits, affine = load_visits(folder, timepoints)
    flagged = flag_lesions(lesions, mean_entropy_by_lesion(visits), clinical, settings, rano_settings)
    box = brain_box(visits)
    sizes: dict[str, int] = {}
    visit_data = []
    responses = {str(r["timepoint"]): r for r in _json_records(response)}
    for visit in visits:
        encoded = encode_visit(visit, box, affine)
        for name, text in encoded.items():
            sizes[name] = sizes.get(name, 0) + len(text)
        rows = flagged[flagged["timepoint"] == visit.timepoint]
        visit_data.append(
            {
                "timepoint": visit.timepoint,
                "response": responses.get(visit.timepoint),
                "lesions": _json_records(rows[REVIEW_LESION_COLUMNS]),
                **encoded,
            }
        )
    ids = sorted({int(i) for i in lesions["lesion_id"] if int(i) > 0})
    data = {
        "patient": patient,
        "visits": visit_data,
        "colours": {str(i): lesion_colour(i) for i in ids},
        "rejectedColour": REJECTED_COLOUR,
        "review": read_review_rows(folder / "review.tsv"),
        "reviewPath": f"results/{patient}/review.tsv",
    }
    page = resources.files("brainmets.review").joinpath("page.html").read_text(encoding="utf-8")
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    replacements = {
        "__TITLE__": html.escape(f"brainmets review: {patient}"),
        "__PATIENT__": html.escape(patient),
        "__TIMELINE__": timeline_svg(response),
        "__NIIVUE_VERSION__": html.escape(version),
        "__NIIVUE_LICENSE__": html.escape(licence),
    }
    for key, value in replacements.items():
        page = page.replace(key, value)
    # the bundle and the data last, so that no placeholder inside them is ever replaced
    head, tail = page.split("/*__NIIVUE_JS__*/")
    head_data, tail_data = tail.split("__REVIEW_DATA__")
    document = head + bundle + head_data + payload + tail_data
    with atomic_path(out) as tmp:
        tmp.write_text(document, encoding="utf-8")
    sizes["viewer"] = len(bundle)
    sizes["page"] = len(document.encode("utf-8"))
    return sizes

"""A DICOMweb archive as source and destination: credentials, transport, retries, fetching and sending.

The tests marked `system` run a real archive (Orthanc with its DICOMweb plugin, Debian packages
installed by tests/orthanc.py) on 127.0.0.1 with basic auth; they run where BRAINMETS_SYSTEM_TESTS=1.
The others check the transport on their own (a closed port, stand-in answers).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from brainmets.cli import main
from brainmets.dicom.dicomweb import (
    PASSWORD_VARIABLE,
    TOKEN_VARIABLE,
    USER_VARIABLE,
    Archive,
    DicomwebSettings,
    credentials,
    public_url,
    redact,
)
from brainmets.dicom.pacs_source import fetch_series
from brainmets.dicom.series_writer import derived_uid, write_mr_series
from brainmets.errors import BrainmetsError

from test_dicom_outputs import PATIENT, patient  # noqa: F401  (fixture: a patient's visits with their DICOM outputs)

PASSWORD = "pw-Zq81-never-shown"
TOKEN = "tok-4Rb9-never-shown"
#: quick transport for the tests: few retries, no waiting
FAST = DicomwebSettings(retries=2, backoff_s=0.0, timeout_s=10.0)


def closed_port_url() -> str:
    """A DICOMweb URL on a loopback port nothing listens on."""
    from orthanc import free_port

    return f"http://127.0.0.1:{free_port()}/dicom-web"


# credentials and transport ----------------------------------------------------------------------------


def test_credentials_come_from_the_environment_or_netrc_never_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Token first, then user and password, then netrc; a URL with user-info is refused without echoing it."""
    url = "https://pacs.example.org/dicom-web"
    assert credentials(url, {TOKEN_VARIABLE: TOKEN, USER_VARIABLE: "u", PASSWORD_VARIABLE: PASSWORD}).kind == "token"
    basic = credentials(url, {USER_VARIABLE: "u", PASSWORD_VARIABLE: PASSWORD})
    assert (basic.kind, basic.auth.password) == ("basic", PASSWORD)  # type: ignore[union-attr]
    with pytest.raises(BrainmetsError, match=PASSWORD_VARIABLE):
        credentials(url, {USER_VARIABLE: "u"})
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine pacs.example.org login reader password {PASSWORD}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    from_netrc = credentials(url, {})
    assert (from_netrc.kind, from_netrc.source, from_netrc.auth.username) == ("basic", "netrc", "reader")  # type: ignore[union-attr]
    with pytest.raises(BrainmetsError) as refused:
        credentials(f"https://reader:{PASSWORD}@pacs.example.org/dicom-web", {})
    assert PASSWORD not in str(refused.value) and "user-info" in str(refused.value)
    assert public_url(f"https://reader:{PASSWORD}@pacs.example.org:8443/x") == "https://pacs.example.org:8443/x"
    assert redact(f"GET https://a:{PASSWORD}@h/x failed, token {TOKEN}", [TOKEN]) == "GET https://h/x failed, token ***"


def test_tls_is_verified_unless_turned_off_with_a_warning_every_time(tmp_path: Path) -> None:
    """Default verify; a CA bundle is used as given (and must exist); verify_tls false warns on each construction."""
    url = "https://pacs.example.org/dicom-web"
    assert Archive(url, DicomwebSettings(), environ={}).client._session.verify is True
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert Archive(url, DicomwebSettings(ca_bundle=str(bundle)), environ={}).client._session.verify == str(bundle)
    with pytest.raises(BrainmetsError, match="CA bundle not found"):
        Archive(url, DicomwebSettings(ca_bundle=str(tmp_path / "none.pem")), environ={})
    warned: list[str] = []
    for _ in range(2):
        archive = Archive(url, DicomwebSettings(verify_tls=False), environ={}, warn=warned.append)
        assert archive.client._session.verify is False
    assert len(warned) == 2 and all("NOT verified" in line for line in warned)


def test_connection_errors_are_retried_with_bounded_backoff_then_one_line_naming_the_study() -> None:
    """A closed port: 1 + retries tries with doubling, capped waits, then one line with the study and the answer."""
    waits: list[float] = []
    settings = DicomwebSettings(retries=4, backoff_s=0.5, max_backoff_s=2.0, timeout_s=5.0)
    archive = Archive(
        closed_port_url(), settings, environ={USER_VARIABLE: "u", PASSWORD_VARIABLE: PASSWORD}, sleep=waits.append
    )
    with pytest.raises(BrainmetsError) as failed:
        archive.check_study("1.2.3.4")
    line = str(failed.value)
    assert waits == [0.5, 1.0, 2.0, 2.0]
    assert "\n" not in line and "1.2.3.4" in line and "connection refused after 5 tries" in line
    assert PASSWORD not in line


#: a self-signed certificate for 127.0.0.1 (valid until 2126) and its key, for the HTTPS stand-in archive
LOOPBACK_CERTIFICATE = Path(__file__).parent / "data" / "tls" / "loopback-certificate.pem"
LOOPBACK_KEY = LOOPBACK_CERTIFICATE.with_name("loopback-key.pem")


@contextlib.contextmanager
def answering(*answers: tuple[int, float], tls: bool = False) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server giving (status, delay s) answers in turn, then 200 with []; yields URL and requests."""
    seen: list[str] = []
    queue = list(answers)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server interface)
            seen.append(self.path)
            status, delay = queue.pop(0) if queue else (200, 0.0)
            time.sleep(delay)
            body = b"[]" if status == 200 else b"busy"
            if status == 299:  # an answer that is not DICOM JSON
                status, body = 200, b"<html>login page</html>"
            with contextlib.suppress(OSError):  # the client may have given up waiting
                self.send_response(status)
                self.send_header("Content-Type", "application/dicom+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(LOOPBACK_CERTIFICATE, LOOPBACK_KEY)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}/dicom-web", seen
    finally:
        server.shutdown()
        server.server_close()


def test_busy_answers_and_timeouts_are_retried_then_named_in_one_line() -> None:
    """HTTP 503 twice then an answer: three requests, success; answers slower than the timeout: tries, then one line."""
    with answering((503, 0.0), (503, 0.0)) as (url, seen):
        archive = Archive(url, FAST, environ={}, sleep=lambda s: None)
        assert archive.find_studies({"PatientID": "x"}) == [] and len(seen) == 3
    with answering((503, 0.0), (503, 0.0), (503, 0.0)) as (url, seen):
        with pytest.raises(
            BrainmetsError, match=r"study 1\.2\.3: search: the archive answered HTTP 503 .* after 3 tries"
        ):
            Archive(url, FAST, environ={}, sleep=lambda s: None).check_study("1.2.3")
    slow = DicomwebSettings(retries=1, backoff_s=0.0, timeout_s=0.3)
    with answering((200, 1.0), (200, 1.0)) as (url, seen):
        with pytest.raises(BrainmetsError) as failed:
            Archive(url, slow, environ={}, sleep=lambda s: None).check_study("1.2.3")
    assert "study 1.2.3: search: no answer within the timeout after 2 tries" in str(failed.value)
    assert len(seen) == 2
    with answering((299, 0.0)) as (url, seen):
        with pytest.raises(BrainmetsError, match=r"search: the request or the archive's answer is not valid DICOMweb"):
            Archive(url, FAST, environ={}, sleep=lambda s: None).check_study("1.2.3")
    assert len(seen) == 1


def test_tls_certificates_are_checked_a_ca_bundle_is_trusted_and_turning_checks_off_warns() -> None:
    """An HTTPS archive with a self-signed certificate: refused at once by default (no retry), trusted through
    ca_bundle, reached with verify_tls false only with the warning."""
    waits: list[float] = []
    with answering(tls=True) as (url, seen):
        with pytest.raises(BrainmetsError) as refused:
            Archive(url, FAST, environ={}, sleep=waits.append).check_study("1.2.3")
        line = str(refused.value)
        assert "study 1.2.3: search: TLS failed (certificate verify failed)" in line and "dicomweb.ca_bundle" in line
        assert waits == [] and seen == []  # not retried, nothing asked
        trusted = DicomwebSettings(ca_bundle=str(LOOPBACK_CERTIFICATE), retries=0)
        assert Archive(url, trusted, environ={}).find_studies({"PatientID": "nobody"}) == []
        warned: list[str] = []
        blind = Archive(url, DicomwebSettings(verify_tls=False, retries=0), environ={}, warn=warned.append)
        assert blind.find_studies({"PatientID": "nobody"}) == [] and len(warned) == 1
        assert len(seen) == 2


class StandIn:
    """A stand-in DICOMweb client answering one series of three instances, with one fault chosen by the test."""

    def __init__(self, study: str, series: str, fault: str) -> None:
        self.study, self.series, self.fault = study, series, fault
        self.sops = [f"{series}.{n}" for n in range(1, 4)]
        self.listings = 0

    def search_for_studies(self, **_: object) -> list[dict]:
        """The study asked for."""
        return [{"0020000D": {"vr": "UI", "Value": [self.study]}}]

    def search_for_instances(self, **_: object) -> list[dict]:
        """Three MR instances; with fault 'grows', a fourth from the second listing on; 'sr': an SR among them."""
        self.listings += 1
        sops = self.sops + ([f"{self.series}.4"] if self.fault == "grows" and self.listings > 1 else [])
        mr = "1.2.840.10008.5.1.4.1.1.4"
        return [
            {
                "00080018": {"vr": "UI", "Value": [sop]},
                "00080016": {
                    "vr": "UI",
                    "Value": ["1.2.840.10008.5.1.4.1.1.88.33" if self.fault == "sr" and n == 1 else mr],
                },
            }
            for n, sop in enumerate(sops)
        ]

    def retrieve_instance(self, study: str, series: str, sop: str) -> pydicom.Dataset:
        """An MR header; with fault 'other study', of another study."""
        ds = pydicom.Dataset()
        ds.StudyInstanceUID = "1.2.999" if self.fault == "other study" else study
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series, sop
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        return ds


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("other study", "answered instance 1.2.5.1 with study 1.2.999; refused"),
        ("sr", "non-image object (Comprehensive SR Storage"),
        ("grows", "changed on the archive while it was fetched (3 instances listed, 4 now)"),
    ],
)
def test_an_archive_answering_the_wrong_thing_is_refused_and_nothing_is_complete(
    tmp_path: Path, fault: str, words: str
) -> None:
    """Another study, a non-image object, a series that grows: one line; the series folder is never made."""
    archive = Archive("http://127.0.0.1:9/dicom-web", FAST, environ={})
    archive.client = StandIn("1.2.4", "1.2.5", fault)  # type: ignore[assignment]
    with pytest.raises(BrainmetsError) as refused:
        fetch_series(archive, "1.2.4", "1.2.5", tmp_path / "cache", tmp_path / "series")
    assert words in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "series").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".series")]


# a real archive ---------------------------------------------------------------------------------------


def _volume(shape: tuple[int, int, int], seed: int) -> nib.Nifti1Image:
    """A small int16 head-like volume, 1 x 1 x 3 mm."""
    data = np.random.default_rng(seed).normal(300, 40, shape).clip(0).astype(np.int16)
    return nib.Nifti1Image(data, np.diag([1.0, 1.0, 3.0, 1.0]))


def write_study(folder: Path, name: str, slices: int = 12) -> tuple[str, str]:
    """One small post-contrast T1 series in its own study; returns (study UID, series UID)."""
    study = derived_uid("dicomweb test", name, "study")
    write_mr_series(
        _volume((24, 24, slices), len(name)),
        folder,
        patient_id=f"PACS-{name}",
        patient_name=f"Test^{name}",
        study_instance_uid=study,
        study_date="20260105",
        series_number=5,
        series_description="T1 MPRAGE post",
        contrast_agent="Gadobutrol",
        frame_of_reference_uid=derived_uid("dicomweb test", name, "frame"),
    )
    return study, str(pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True).SeriesInstanceUID)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A running Orthanc (DICOMweb, basic auth) holding the DICOM demo's studies (1 patient, 2 visits)."""
    from orthanc import running_orthanc

    root = tmp_path_factory.mktemp("orthanc")
    assert (
        main(
            [
                "demo-cohort",
                "--dicom",
                "--out",
                str(root / "demo"),
                "--patients",
                "1",
                "--timepoints",
                "2",
                "--train",
                "0",
                "--scale",
                "2",
            ]
        )
        == 0
    )
    with running_orthanc(root / "server", PASSWORD) as server:
        server.upload(sorted((root / "demo" / "dicom").rglob("*.dcm")))
        server.demo = root / "demo"  # type: ignore[attr-defined]
        yield server


def env_for(server: object, password: str = PASSWORD) -> dict[str, str]:
    """The environment of a brainmets command that logs in to the test archive."""
    from orthanc import USER

    return dict(os.environ, **{USER_VARIABLE: USER, PASSWORD_VARIABLE: password})


#: the terminal output of every command the tests ran (searched for secrets by the last test)
TERMINAL: list[str] = []


def brainmets(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the brainmets command line as a user would; its output captured (and kept in TERMINAL)."""
    done = subprocess.run(
        [sys.executable, "-m", "brainmets.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    TERMINAL.extend([done.stdout, done.stderr])
    return done


def logged_in(server: object, settings: DicomwebSettings = FAST) -> Archive:
    """An Archive of the test server with its credentials."""
    from orthanc import USER

    return Archive(server.url, settings, environ={USER_VARIABLE: USER, PASSWORD_VARIABLE: PASSWORD})  # type: ignore[attr-defined]


@pytest.mark.system
@pytest.mark.slow
def test_dicom_sheet_from_the_archive_is_the_sheet_from_the_folder(archive, tmp_path: Path) -> None:
    """dicom-sheet --dicomweb picks the same series of the same studies as dicom-sheet on the DICOM tree."""
    env = env_for(archive)
    folder = brainmets("dicom-sheet", str(archive.demo / "dicom"), "--out", str(tmp_path / "folder.tsv"), env=env)
    remote = brainmets(
        "dicom-sheet",
        "--dicomweb",
        archive.url,
        "--patient-id",
        "patient01",
        "--out",
        str(tmp_path / "pacs.tsv"),
        env=env,
    )
    assert folder.returncode == 0 and remote.returncode == 0, remote.stderr
    local, pacs = pd.read_csv(tmp_path / "folder.tsv", sep="\t"), pd.read_csv(tmp_path / "pacs.tsv", sep="\t")
    assert list(pacs.columns) == ["patient_id", "timepoint", "study_uid", "series_uid"]
    assert len(pacs) == 2
    pd.testing.assert_frame_equal(
        local[["patient_id", "timepoint", "series_uid"]], pacs[["patient_id", "timepoint", "series_uid"]]
    )
    for row in pacs.itertuples():
        picked = next((archive.demo / "dicom" / row.patient_id / row.timepoint.replace("-", "")).glob("05_*/*.dcm"))
        header = pydicom.dcmread(picked, stop_before_pixels=True)
        assert (row.study_uid, row.series_uid) == (header.StudyInstanceUID, header.SeriesInstanceUID)
    assert "ambiguous" in remote.stdout  # the even visit has no agent: listed as for a folder
    later = brainmets("dicom-sheet", "--dicomweb", archive.url, "--patient-id", "patient01", "--since", "2024-06-01",
                      "--out", str(tmp_path / "later.tsv"), env=env)  # fmt: skip
    assert later.returncode == 0, later.stderr
    assert list(pd.read_csv(tmp_path / "later.tsv", sep="\t")["timepoint"]) == list(
        pacs["timepoint"][pacs["timepoint"] > "2024-06-01"]
    )
    assert (pacs["timepoint"] < "2024-06-01").any()


@pytest.mark.system
@pytest.mark.slow  # the archive fixture: a demo cohort and an Orthanc, about 10 s
def test_wrong_password_and_unknown_study_are_one_line_and_fetch_nothing(archive, tmp_path: Path) -> None:
    """HTTP 401 names the variables to set; an unknown study UID says so; neither leaves a series folder."""
    study = pydicom.dcmread(next(archive.demo.rglob("05_*/*.dcm")), stop_before_pixels=True).StudyInstanceUID
    wrong = brainmets(
        "dicomweb-fetch",
        "--dicomweb",
        archive.url,
        "--study-uid",
        str(study),
        "--out",
        str(tmp_path / "s"),
        "--cache",
        str(tmp_path / "c"),
        env=env_for(archive, "not-the-password"),
    )
    assert wrong.returncode == 2
    line = wrong.stderr.strip()
    assert "\n" not in line and "HTTP 401" in line and USER_VARIABLE in line and PASSWORD_VARIABLE in line
    assert "try 2 of" not in wrong.stderr  # refused credentials are not retried
    unknown = brainmets(
        "dicomweb-fetch",
        "--dicomweb",
        archive.url,
        "--study-uid",
        "1.2.3.999",
        "--out",
        str(tmp_path / "s"),
        "--cache",
        str(tmp_path / "c"),
        env=env_for(archive),
    )
    assert unknown.returncode == 2 and "study 1.2.3.999: not found on the archive" in unknown.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.system
@pytest.mark.slow  # the archive fixture: a demo cohort and an Orthanc, about 10 s
def test_a_retrieval_cut_by_a_stopped_server_resumes_with_only_what_was_missing(archive, tmp_path: Path) -> None:
    """The server stops after 5 instances: one line, no series folder; started again, the rerun fetches the rest."""
    study, series = write_study(tmp_path / "upload", "resume", slices=12)
    archive.upload(sorted((tmp_path / "upload").glob("*.dcm")))
    fetched: list[str] = []

    def stop_after_five(sop: str) -> None:
        fetched.append(sop)
        if len(fetched) == 5:
            archive.stop()

    try:
        with pytest.raises(BrainmetsError) as cut:
            fetch_series(
                logged_in(archive), study, series, tmp_path / "cache", tmp_path / "series", after_each=stop_after_five
            )
    finally:
        archive.start()
    assert study in str(cut.value) and "connection refused after 3 tries" in str(cut.value)
    assert not (tmp_path / "series").exists()
    manifest = fetch_series(logged_in(archive), study, series, tmp_path / "cache", tmp_path / "series")
    assert (manifest["cached_before"], manifest["fetched_now"]) == (5, 7)
    sent = {
        pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p).pixel_array for p in (tmp_path / "upload").glob("*.dcm")
    }
    got = {
        pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p).pixel_array for p in (tmp_path / "series").glob("*.dcm")
    }
    assert sent.keys() == got.keys()
    for sop, pixels in sent.items():
        np.testing.assert_array_equal(got[sop], pixels)


@pytest.mark.system
@pytest.mark.slow  # the archive fixture: a demo cohort and an Orthanc, about 10 s
def test_a_series_gaining_an_instance_while_fetched_is_refused_then_completed_by_a_rerun(
    archive, tmp_path: Path
) -> None:
    """An instance added after the listing: refused in one line, nothing complete; the rerun takes only the new one."""
    study, series = write_study(tmp_path / "upload", "grows", slices=12)
    files = sorted((tmp_path / "upload").glob("*.dcm"))
    archive.upload(files[:-1])
    added: list[str] = []

    def add_one(sop: str) -> None:
        if not added:
            archive.upload(files[-1:])
            added.append(sop)

    with pytest.raises(BrainmetsError) as refused:
        fetch_series(logged_in(archive), study, series, tmp_path / "cache", tmp_path / "series", after_each=add_one)
    assert "(11 instances listed, 12 now)" in str(refused.value)
    assert not (tmp_path / "series").exists()
    manifest = fetch_series(logged_in(archive), study, series, tmp_path / "cache", tmp_path / "series")
    assert (manifest["cached_before"], manifest["fetched_now"], len(manifest["instances"])) == (11, 1, 12)


def _held(server: object, study: str) -> dict[str, str]:
    """SOP Instance UID -> SOP class name of every instance the archive holds in a study (QIDO-RS)."""
    archive = logged_in(server)
    found = {}
    for series in archive.find_series(study):
        for record in archive.find_instances(study, series["0020000E"]["Value"][0]):
            found[record["00080018"]["Value"][0]] = pydicom.uid.UID(record["00080016"]["Value"][0]).name
    return found


@pytest.mark.system
@pytest.mark.slow
def test_fetch_export_and_send_back_stores_each_object_once_in_the_right_study(
    archive,
    patient,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
) -> None:
    """Fetched series -> dicom-export -> send: the archive holds SEG, SR and both maps in the source study, once."""
    from brainmets.export.dicom import export_scan

    timepoint, visit = next(iter(patient.items()))
    archive.upload(sorted(visit.series.glob("*.dcm")))
    source = pydicom.dcmread(next(visit.series.glob("*.dcm")), stop_before_pixels=True)
    study, series = str(source.StudyInstanceUID), str(source.SeriesInstanceUID)
    env = env_for(archive)
    fetched = tmp_path / "fetched"
    run = brainmets("dicomweb-fetch", "--dicomweb", archive.url, "--study-uid", study, "--series-uid", series,
                    "--out", str(fetched), "--cache", str(tmp_path / "cache"), env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = tmp_path / "dicom"
    results = visit.scan.parent
    export_scan(fetched, visit.scan, results / "tracked" / f"{timepoint}.nii.gz", results / "lesions.tsv", out,
                patient_id=PATIENT, timepoint=timepoint, response=results / "rano_response.tsv")  # fmt: skip
    names = sorted(p.name for p in out.glob("*.dcm"))
    assert names == ["measurements.dcm", "probability.dcm", "segmentation.dcm", "total_entropy.dcm"]
    for name in names:  # the objects made from the fetched series are those made from the scanner's files
        assert pydicom.dcmread(out / name).SOPInstanceUID == pydicom.dcmread(visit.out / name).SOPInstanceUID
    before = archive.counts()
    first = brainmets("send", str(out), "--dicomweb", archive.url, env=env)
    assert first.returncode == 0, first.stderr
    receipt = json.loads((out / "sent.json").read_text())
    assert [o["status"] for o in receipt["objects"]] == ["stored"] * 4
    assert receipt["archive"] == archive.url
    held = _held(archive, study)
    sent = {pydicom.dcmread(out / n).SOPInstanceUID: pydicom.dcmread(out / n) for n in names}
    assert sent.keys() <= held.keys()
    assert all(held[uid] == pydicom.uid.UID(ds.SOPClassUID).name for uid, ds in sent.items())
    classes = sorted(held[uid] for uid in sent)
    assert classes[1:] == ["Parametric Map Storage", "Parametric Map Storage", "Segmentation Storage"]
    assert "SR Storage" in classes[0]
    assert all(str(ds.StudyInstanceUID) == study for ds in sent.values())
    counts = archive.counts()
    assert (counts["Studies"], counts["Instances"]) == (before["Studies"], before["Instances"] + 4)
    second = brainmets("send", str(out), "--dicomweb", archive.url, env=env)
    assert second.returncode == 0, second.stderr
    assert [o["status"] for o in json.loads((out / "sent.json").read_text())["objects"]] == ["already held"] * 4
    assert archive.counts() == counts
    (out / "sent.json").unlink()
    whole = brainmets("send", str(tmp_path), "--dicomweb", archive.url, env=env)  # a results folder: its dicom/ only
    assert whole.returncode == 0, whole.stderr
    assert [o["status"] for o in json.loads((out / "sent.json").read_text())["objects"]] == ["already held"] * 4
    assert not (fetched / "sent.json").exists() and archive.counts() == counts
    logged_in(archive).store(study, list(sent.values()))  # the archive itself keeps one copy of a re-stored UID
    assert archive.counts() == counts
    seg_series = str(sent[next(u for u in sent if held[u] == "Segmentation Storage")].SeriesInstanceUID)
    refused = brainmets("dicomweb-fetch", "--dicomweb", archive.url, "--study-uid", study, "--series-uid", seg_series,
                        "--out", str(tmp_path / "seg"), "--cache", str(tmp_path / "cache"), env=env)  # fmt: skip
    assert refused.returncode == 2 and "non-image object (Segmentation Storage" in refused.stderr
    assert not (tmp_path / "seg").exists()


@pytest.mark.system
@pytest.mark.slow
def test_no_password_or_token_in_any_file_written_or_any_terminal_line(archive, patient, tmp_path: Path) -> None:  # noqa: F811 (the imported fixture)
    """Every command with the password or token set, failing or not: neither appears in a file or on the terminal."""
    from orthanc import USER

    env = env_for(archive)
    with_token = dict(os.environ, **{TOKEN_VARIABLE: TOKEN})
    timepoint, visit = list(patient.items())[1]
    archive.upload(sorted(visit.series.glob("*.dcm")))
    study = str(pydicom.dcmread(next(visit.series.glob("*.dcm")), stop_before_pixels=True).StudyInstanceUID)
    userinfo = archive.url.replace("://", f"://{USER}:{PASSWORD}@")
    (tmp_path / "q.yaml").write_text("dicomweb: {retries: 1, backoff_s: 0}\n")
    runs = [
        (env, ["dicom-sheet", "--dicomweb", archive.url, "--patient-id", "patient01", "--out", "samples.tsv"]),
        (env, ["dicomweb-fetch", "--dicomweb", archive.url, "--study-uid", study, "--out", "series", "--cache", "c"]),
        (env, ["send", str(visit.out), "--dicomweb", archive.url, "--receipt", "sent.json"]),
        (
            with_token,
            ["dicomweb-fetch", "--dicomweb", archive.url, "--study-uid", study, "--out", "s2", "--cache", "c"],
        ),
        (
            with_token,
            ["send", str(visit.out), "--dicomweb", closed_port_url(), "--receipt", "s3.json", "--config", "q.yaml"],
        ),
        (env_for(archive, "wrong"), ["dicom-sheet", "--dicomweb", archive.url, "--patient-id", "x", "--out", "x.tsv"]),
        (os.environ, ["send", str(visit.out), "--dicomweb", userinfo, "--receipt", "s4.json"]),
    ]
    for environment, args in runs:
        brainmets(*args, env=dict(environment), cwd=tmp_path)
    assert (tmp_path / "sent.json").is_file() and (tmp_path / "series").is_dir()  # the commands did their work
    assert "try 2 of" in "".join(TERMINAL) and "HTTP 401" in "".join(TERMINAL)  # and failed where they should
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    written += [p for p in visit.out.rglob("*") if p.is_file()]
    others = tmp_path.parent  # the files the other tests of this session had brainmets write
    written += [
        p
        for p in others.rglob("*")
        if p.is_file() and "server" not in p.relative_to(others).parts[:2] and p.name != "netrc"  # the tests' inputs
    ]
    assert len(written) > 50
    for secret in (PASSWORD, TOKEN):
        assert not [p for p in written if secret.encode() in p.read_bytes()], secret
        assert not [line for line in TERMINAL if secret in line], secret


def test_a_sheet_row_names_an_archive_study_instead_of_an_image(tmp_path: Path) -> None:
    """study_uid (with or without series_uid) is a scan; both image and study_uid, or neither, is one line."""
    from brainmets.samplesheet import load_samples

    sheet = tmp_path / "samples.tsv"
    sheet.write_text(
        "patient_id\ttimepoint\tstudy_uid\tseries_uid\np1\t2024-01-01\t1.2.3\t\np1\t2024-02-01\t1.2.4\t1.2.5\n"
    )
    loaded = load_samples(sheet)
    assert list(loaded["study_uid"]) == ["1.2.3", "1.2.4"] and loaded["image"].isna().all()
    assert list(loaded["series_uid"].fillna("")) == ["", "1.2.5"]
    sheet.write_text(f"patient_id\ttimepoint\timage\tstudy_uid\np1\t2024-01-01\t{tmp_path}\t1.2.3\n")
    with pytest.raises(BrainmetsError, match="row 1 .*both image and study_uid"):
        load_samples(sheet)
    sheet.write_text("patient_id\ttimepoint\timage\tstudy_uid\np1\t2024-01-01\t\t\n")
    with pytest.raises(BrainmetsError, match="row 1 .*empty, but every row needs an image or a study_uid"):
        load_samples(sheet)


@pytest.mark.system
@pytest.mark.workflow
@pytest.mark.slow
def test_the_workflow_fetches_segments_and_sends_back_once(
    archive, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sheet from the archive -> workflow (fetch, segment, DICOM outputs, send) -> the archive holds each scan's
    SEG, SR and maps in its study; a second run and a forced resend add nothing; no password in any file."""
    import yaml

    from orthanc import USER
    from slurm.project import make_project, snakemake
    from test_dicom_outputs import _write_head_series

    overrides = {"model": {"dir": str(tiny_model_dir)}, "preprocess": {"spacing_mm": [2.0, 2.0, 2.0]}}
    project = make_project(tmp_path / "project", patients=1, timepoints=2, training=0, config_overrides=overrides)
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    config["preprocess"]["skull_stripped"] = True
    config["dicomweb"] = {"url": archive.url, "send": True, "retries": 1, "backoff_s": 0.0}
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    studies = {}
    for seed, (timepoint, radius) in enumerate((("2024-01-15", 3.0), ("2024-02-15", 2.2))):
        folder = tmp_path / "upload" / timepoint
        _write_head_series(folder, timepoint, radius, seed)
        archive.upload(sorted(folder.glob("*.dcm")))
        header = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
        studies[timepoint] = (str(header.StudyInstanceUID), str(header.SeriesInstanceUID))
    monkeypatch.setenv(USER_VARIABLE, USER)
    monkeypatch.setenv(PASSWORD_VARIABLE, PASSWORD)
    sheet = project / "config" / "samples.tsv"
    made = brainmets("dicom-sheet", "--dicomweb", archive.url, "--patient-id", "SITE-0042", "--since", "2024-01-01",
                     "--until", "2024-12-31", "--out", str(sheet), env=dict(os.environ))  # fmt: skip
    assert made.returncode == 0, made.stderr
    rows = pd.read_csv(sheet, sep="\t")
    assert {(r.timepoint, r.study_uid, r.series_uid) for r in rows.itertuples()} == {
        (t, *s) for t, s in studies.items()
    }
    run = snakemake(project, "--cores", "2", timeout=900)
    TERMINAL.extend([run.stdout, run.stderr])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for timepoint, (study, series) in studies.items():
        out = project / "results" / "SITE-0042" / timepoint / "dicom"
        receipt = json.loads((out / "sent.json").read_text())
        assert [o["status"] for o in receipt["objects"]] == ["stored"] * 4
        held = _held(archive, study)
        for name in ("segmentation", "measurements", "probability", "total_entropy"):
            ds = pydicom.dcmread(out / f"{name}.dcm")
            assert str(ds.StudyInstanceUID) == study and str(ds.SOPInstanceUID) in held, (timepoint, name)
        seg = pydicom.dcmread(out / "segmentation.dcm")
        assert str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID) == series
        assert sorted(held.values()).count("Segmentation Storage") == 1
    counts = archive.counts()
    again = snakemake(project, "--cores", "1", timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    resent = snakemake(project, "--cores", "1", "--forcerun", "dicomweb_send", timeout=300)
    TERMINAL.extend([again.stdout, again.stderr, resent.stdout, resent.stderr])
    assert resent.returncode == 0, resent.stdout[-3000:] + resent.stderr[-3000:]
    receipts = list((project / "results").rglob("sent.json"))
    assert len(receipts) == 2
    assert all(o["status"] == "already held" for r in receipts for o in json.loads(r.read_text())["objects"])
    assert archive.counts() == counts
    report = snakemake(project, "--report", "results/report.html", timeout=300)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    written = [p for p in project.rglob("*") if p.is_file()]
    assert project / "results" / "report.html" in written
    assert any("dicomweb_fetch" in str(p) for p in written) and any("dicomweb_send" in str(p) for p in written)
    assert not [p for p in written if PASSWORD.encode() in p.read_bytes()]
    assert not [line for line in TERMINAL if PASSWORD in line]


@pytest.mark.workflow
def test_the_workflow_plans_a_fetch_per_archive_study_and_a_send_only_when_asked(tmp_path: Path) -> None:
    """study_uid rows get dicomweb_fetch (their series folder feeds dicom_to_nifti); send: true adds dicomweb_send."""
    import yaml

    from slurm.project import dry_run_jobs, make_project, snakemake

    project = make_project(tmp_path / "p", patients=2, timepoints=2, training=2, folds=2)
    sheet = project / "config" / "samples.tsv"
    lines = sheet.read_text().splitlines()
    rows = [lines[0] + "\tstudy_uid\tseries_uid"]
    for n, line in enumerate(lines[1:]):
        cells = line.split("\t")
        if cells[0] == "P1":  # named by its study in the archive, the second visit with its series
            cells[2] = ""
            rows.append("\t".join(cells) + f"\t1.2.3.{n}\t" + ("1.2.4.1" if n else ""))
        else:
            rows.append(line + "\t\t")
    sheet.write_text("\n".join(rows) + "\n")
    refused = snakemake(project, "-n")
    assert refused.returncode != 0 and "dicomweb.url is empty" in refused.stdout + refused.stderr
    config_path = project / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["dicomweb"] = {"url": "https://pacs.example.org/dicom-web"}
    config_path.write_text(yaml.safe_dump(config))
    jobs = dry_run_jobs(project)
    fetched = sorted((w["patient"], w["timepoint"]) for rule, w in jobs if rule == "dicomweb_fetch")
    assert fetched == [("P1", "2024-01-15"), ("P1", "2024-02-15")]
    assert not [rule for rule, _ in jobs if rule == "dicomweb_send"]
    shown = snakemake(project, "results/P1/2024-02-15/source/t1ce.nii.gz", "-n", "-p")
    text = shown.stdout + shown.stderr
    assert "--study-uid 1.2.3.1 --series-uid 1.2.4.1 --out resources/dicomweb/series/P1/2024-02-15" in text
    assert "convert-dicom resources/dicomweb/series/P1/2024-02-15" in text
    config["dicomweb"]["send"] = True
    config_path.write_text(yaml.safe_dump(config))
    sent = sorted((w["patient"], w["timepoint"]) for rule, w in dry_run_jobs(project) if rule == "dicomweb_send")
    assert sent == fetched


def test_send_stores_results_never_images(tmp_path: Path) -> None:
    """An image among the objects: refused in one line before anything is sent (the archive is never asked)."""
    from brainmets.dicom import pacs_send

    study, _ = write_study(tmp_path / "scan", "foreign", slices=3)
    archive = Archive(closed_port_url(), FAST, environ={})
    with pytest.raises(BrainmetsError, match=r"a MR Image Storage object; send stores results only"):
        pacs_send.send_objects(archive, sorted((tmp_path / "scan").glob("*.dcm")))
    done = brainmets("send", str(tmp_path), "--dicomweb", closed_port_url(), env=dict(os.environ))
    assert done.returncode == 2 and "no DICOM objects (*.dcm) in it or in a dicom/ folder under it" in done.stderr

"""A real DICOMweb archive for the tests: Orthanc with its DICOMweb plugin on 127.0.0.1, basic auth on.

`ensure_installed()` installs the Debian packages `orthanc` and `orthanc-dicomweb` when missing (a
system change: only tests marked `system` call it). `Orthanc(folder)` writes a configuration whose
storage lies in `folder`, listens on a free loopback port, accepts one user, and runs `Orthanc` as an
ordinary child process (no service, no DICOM port); `stop()` ends exactly that process, `start()`
starts it again on the same storage and port.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import requests

PACKAGES = ["orthanc", "orthanc-dicomweb"]
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
USER = "brainmets-test"


def ensure_installed() -> None:
    """Install the Debian Orthanc and DICOMweb plugin packages if either is missing (about 20 s)."""
    if shutil.which("Orthanc") and os.path.exists(PLUGIN):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-q", *PACKAGES], check=True, env=env, capture_output=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Orthanc:
    """One Orthanc process with the DICOMweb plugin, its storage and log in `folder`, basic auth on."""

    def __init__(self, folder: Path, password: str) -> None:
        self.folder = Path(folder)
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.config = self.folder / "orthanc.json"
        (self.folder / "storage").mkdir(parents=True, exist_ok=True)
        settings = {
            "Name": "brainmets-test",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"),
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,
            "DicomServerEnabled": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: password},
            "Plugins": [PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "HttpCompressionEnabled": False,
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
        }
        self.config.write_text(json.dumps(settings, indent=2))

    @property
    def url(self) -> str:
        """The DICOMweb root (no credentials in it)."""
        return f"http://127.0.0.1:{self.port}/dicom-web"

    @property
    def rest(self) -> str:
        """Orthanc's own REST root."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the process and wait until its REST API answers an authenticated request."""
        log = open(self.folder / "orthanc.log", "ab")  # noqa: SIM115 (the child keeps it open)
        self.process = subprocess.Popen(
            ["Orthanc", str(self.config)], stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if self.get("/system").ok:
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout_s} s: {self.log_tail()}")

    def stop(self) -> None:
        """End the process (SIGTERM, then SIGKILL after 10 s) and wait for it."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log_tail(self) -> str:
        """The end of Orthanc's log."""
        path = self.folder / "orthanc.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def get(self, path: str) -> requests.Response:
        """An authenticated GET on Orthanc's REST API."""
        return requests.get(self.rest + path, auth=(USER, self.password), timeout=10)

    def counts(self) -> dict[str, int]:
        """Patients, studies, series and instances the archive holds (REST /statistics)."""
        stats = self.get("/statistics").json()
        return {k: int(stats[f"Count{k}"]) for k in ("Patients", "Studies", "Series", "Instances")}

    def upload(self, files: list[Path]) -> None:
        """Store DICOM files through the REST API (POST /instances)."""
        for path in files:
            answer = requests.post(
                self.rest + "/instances", data=path.read_bytes(), auth=(USER, self.password), timeout=30
            )
            answer.raise_for_status()

    def delete_series(self, series_uid: str) -> None:
        """Remove one series from the archive (found by its SeriesInstanceUID)."""
        found = requests.post(
            self.rest + "/tools/lookup", data=series_uid, auth=(USER, self.password), timeout=10
        ).json()
        for item in found:
            if item["Type"] == "Series":
                requests.delete(self.rest + item["Path"], auth=(USER, self.password), timeout=10).raise_for_status()


@contextlib.contextmanager
def running_orthanc(folder: Path, password: str) -> Iterator[Orthanc]:
    """Install if needed, start an Orthanc in `folder`, yield it, and stop it whatever happens."""
    ensure_installed()
    server = Orthanc(folder, password)
    try:
        server.start()
        yield server
    finally:
        server.stop()

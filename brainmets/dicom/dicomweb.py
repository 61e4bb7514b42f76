"""A DICOMweb archive (PACS) as source and destination: credentials, transport, retries and checks.

Credentials never come from the configuration or the sample sheet: a bearer token from
BRAINMETS_DICOMWEB_TOKEN, else a user and password from BRAINMETS_DICOMWEB_USER and
BRAINMETS_DICOMWEB_PASSWORD, else the netrc entry of the archive's host (the file $NETRC names, else
~/.netrc). A URL carrying a user-info part is refused, and every message this module makes passes
through `redact`, so no password or token reaches a log, a receipt or the terminal. TLS certificates
are verified by default (`ca_bundle` names another CA file); `verify_tls: false` turns verification
off and prints a warning on every run.

`Archive` wraps `dicomweb_client.DICOMwebClient`: every request is retried on connection errors,
timeouts and HTTP 429/5xx answers, `retries` times with a doubling wait capped at `max_backoff_s`;
HTTP 401/403 stop at once with the variables to set. Errors are `BrainmetsError`s of one line that
name the study and the archive's answer.
"""

from __future__ import annotations

import netrc
import os
import sys
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import requests

from brainmets.errors import BrainmetsError

#: the environment variables that carry credentials (never the configuration or the sample sheet)
TOKEN_VARIABLE = "BRAINMETS_DICOMWEB_TOKEN"
USER_VARIABLE = "BRAINMETS_DICOMWEB_USER"
PASSWORD_VARIABLE = "BRAINMETS_DICOMWEB_PASSWORD"
#: HTTP answers worth another try (overloaded or restarting server)
RETRIABLE_STATUS = {408, 429, 500, 502, 503, 504}
#: transport faults worth another try: no connection, no answer in time, an answer cut off mid-way
TRANSPORT_FAULTS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
#: name of the manifest a complete series folder holds (hidden: the DICOM readers skip it)
MANIFEST = ".retrieved.json"

T = TypeVar("T")


@dataclass(frozen=True)
class DicomwebSettings:
    """The `dicomweb` section of the configuration (no credentials: those come from the environment)."""

    url: str = ""
    send: bool = False
    cache: str = "resources/dicomweb"
    ca_bundle: str = ""
    verify_tls: bool = True
    retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    timeout_s: float = 60.0

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any] | None) -> DicomwebSettings:
        """Settings from a checked `dicomweb` configuration section (missing keys take the defaults)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (section or {}).items() if k in known})


@dataclass(frozen=True)
class Credentials:
    """How requests authenticate: 'token', 'basic' or 'none', where from, and the secrets to keep out of text."""

    kind: str
    source: str
    auth: requests.auth.AuthBase | None
    secrets: tuple[str, ...]


class BearerAuth(requests.auth.AuthBase):
    """An `Authorization: Bearer <token>` header on every request."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Add the header to one request."""
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request


class _Session(requests.Session):
    """A session whose configured TLS check (a CA bundle, or none) wins over REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE.

    requests lets those variables replace a session's `verify`, even `False`; without a configured bundle
    they still apply (a site's CA), and the environment's proxies always do.
    """

    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """requests' merge, with the session's own `verify` kept when it was configured."""
        settings: dict[str, Any] = super().merge_environment_settings(*args, **kwargs)
        if self.verify is not True:
            settings["verify"] = self.verify
        return settings


def public_url(url: str) -> str:
    """The URL without its user-info part (user:password@), as it may be shown and recorded."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret replaced by '***' and every URL user-info part removed."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
            quoted = urllib.parse.quote(secret, safe="")
            if quoted != secret:
                text = text.replace(quoted, "***")
    words = []
    for word in text.split(" "):
        if "://" in word and "@" in word:
            start = word.index("://") + 3
            end = word.find("/", start)
            host = word[start:] if end < 0 else word[start:end]
            if "@" in host:
                word = word[:start] + host.rsplit("@", 1)[1] + ("" if end < 0 else word[end:])
        words.append(word)
    return " ".join(words)


def _netrc_entry(host: str) -> tuple[str, str] | None:
    """(login, password) of `host` in the netrc file ($NETRC, else ~/.netrc), or None."""
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    if not path.is_file():
        return None
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (netrc.NetrcParseError, OSError) as error:
        raise BrainmetsError(f"{path}: not a readable netrc file ({type(error).__name__}); fix or remove it") from None
    if entry is None or not entry[2]:
        return None
    return entry[0], entry[2]


def credentials(url: str, environ: Mapping[str, str] | None = None) -> Credentials:
    """The credentials for an archive URL: token, then user and password variables, then netrc; else none."""
    env = os.environ if environ is None else environ
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise BrainmetsError(
            f"{public_url(url)}: the archive URL carries credentials (user-info before '@'), which would end up in "
            f"logs; remove them from the URL and set {USER_VARIABLE} and {PASSWORD_VARIABLE} "
            f"(or {TOKEN_VARIABLE}, or a netrc entry for {parts.hostname})"
        )
    token = env.get(TOKEN_VARIABLE, "")
    if token:
        return Credentials("token", TOKEN_VARIABLE, BearerAuth(token), (token,))
    user, password = env.get(USER_VARIABLE, ""), env.get(PASSWORD_VARIABLE, "")
    if user or password:
        if not (user and password):
            missing = PASSWORD_VARIABLE if user else USER_VARIABLE
            raise BrainmetsError(
                f"{public_url(url)}: {missing} is not set; set both {USER_VARIABLE} and {PASSWORD_VARIABLE}"
            )
        return Credentials(
            "basic", f"{USER_VARIABLE}/{PASSWORD_VARIABLE}", requests.auth.HTTPBasicAuth(user, password), (password,)
        )
    entry = _netrc_entry(parts.hostname or "")
    if entry is not None:
        return Credentials("basic", "netrc", requests.auth.HTTPBasicAuth(*entry), (entry[1],))
    return Credentials("none", "", None, ())


def _reason(error: BaseException) -> str:
    """A short description of a transport error (never the request's headers)."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        answer = error.response
        return f"HTTP {answer.status_code} {answer.reason or ''}".strip()
    if isinstance(error, requests.Timeout):
        return "no answer within the timeout"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "the answer was cut off"
    text = str(error)
    for words in ("Connection refused", "Name or service not known", "Connection reset", "certificate verify failed"):
        if words in text:
            return words[0].lower() + words[1:]
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(error, requests.ConnectionError):
        return "connection failed"
    return type(error).__name__


class Archive:
    """One DICOMweb archive: authenticated session, verified TLS, bounded retries, one-line errors."""

    def __init__(
        self,
        url: str,
        settings: DicomwebSettings | None = None,
        environ: Mapping[str, str] | None = None,
        warn: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from dicomweb_client.api import DICOMwebClient

        self.settings = settings or DicomwebSettings()
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise BrainmetsError(f"{public_url(url)}: not a DICOMweb URL; give http(s)://host[:port]/path")
        self.credentials = credentials(self.url, environ)
        self.shown = public_url(self.url)
        self._sleep = sleep
        session = _Session()
        session.auth = self.credentials.auth  # set, so requests never adds a netrc entry of its own
        if not self.settings.verify_tls:
            (warn or _warn)(
                f"warning: TLS certificates of {self.shown} are NOT verified (dicomweb.verify_tls: false); "
                "anyone on the network path can read the scans and the credentials"
            )
            session.verify = False
            warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        elif self.settings.ca_bundle:
            bundle = Path(self.settings.ca_bundle)
            if not bundle.is_file():
                raise BrainmetsError(f"{bundle}: CA bundle not found (dicomweb.ca_bundle); give a PEM file")
            session.verify = str(bundle)
        timeout = self.settings.timeout_s
        self.client = DICOMwebClient(self.url, session=session, timeout=(min(timeout, 30.0), timeout))
        self.client.set_http_retry_params(retry=False)

    def fail(self, text: str) -> BrainmetsError:
        """A one-line error about this archive, with any secret removed."""
        return BrainmetsError(redact(f"{self.shown}: {text}", self.credentials.secrets))

    def call(self, what: str, request: Callable[[], T]) -> T:
        """Run one request, retrying transport faults and 429/5xx answers; `what` names it in errors."""
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            try:
                return request()
            except requests.HTTPError as error:
                status = error.response.status_code if error.response is not None else 0
                if status in (401, 403):
                    raise self.fail(
                        f"{what}: the archive refused access ({_reason(error)}); {self._how_to_log_in()}"
                    ) from None
                if status == 404:
                    raise self.fail(f"{what}: the archive does not have it ({_reason(error)})") from None
                if status not in RETRIABLE_STATUS or attempt == attempts - 1:
                    raise self.fail(
                        f"{what}: the archive answered {_reason(error)} after {attempt + 1} tries"
                    ) from None
                reason = _reason(error)
            except requests.exceptions.SSLError as error:  # a certificate no retry will change
                raise self.fail(
                    f"{what}: TLS failed ({_reason(error)}); if the archive uses a private CA, set dicomweb.ca_bundle "
                    "to its certificate (PEM)"
                ) from None
            except TRANSPORT_FAULTS as error:
                if attempt == attempts - 1:
                    raise self.fail(
                        f"{what}: {_reason(error)} after {attempts} tries; check that the archive is up and try again"
                    ) from None
                reason = _reason(error)
            except (ValueError, requests.RequestException) as error:  # a malformed answer (or UID): no retry helps
                text = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
                raise self.fail(f"{what}: the request or the archive's answer is not valid DICOMweb ({text})") from None
            wait = min(self.settings.backoff_s * 2**attempt, self.settings.max_backoff_s)
            _warn(
                redact(
                    f"{self.shown}: {what}: {reason}; try {attempt + 2} of {attempts} in {wait:g} s",
                    self.credentials.secrets,
                )
            )
            self._sleep(wait)
        raise AssertionError("unreachable")

    def _how_to_log_in(self) -> str:
        """What to set to authenticate, given what was used."""
        used = f" (used: {self.credentials.source})" if self.credentials.source else " (none were set)"
        return (
            f"set {USER_VARIABLE} and {PASSWORD_VARIABLE}, or {TOKEN_VARIABLE}, or a netrc entry for the host, "
            f"to credentials the archive accepts{used}"
        )

    # QIDO-RS -------------------------------------------------------------------------------------------

    def find_studies(self, filters: Mapping[str, str], what: str = "") -> list[dict[str, Any]]:
        """QIDO-RS studies matching `filters` (DICOM keywords -> values), as DICOM JSON; `what` names it in errors."""
        return self.call(
            what or "search for studies with " + ", ".join(f"{k} {v}" for k, v in filters.items()),
            lambda: self.client.search_for_studies(search_filters=dict(filters), get_remaining=True),
        )

    def check_study(self, study_uid: str) -> dict[str, Any]:
        """The archive's QIDO-RS record of one study; refused when it does not have it or answers another."""
        found = self.find_studies({"StudyInstanceUID": study_uid}, f"study {study_uid}: search")
        if not found:
            raise self.fail(f"study {study_uid}: not found on the archive; check the study_uid in the sample sheet")
        answered = {value(r, "0020000D") for r in found}
        if answered != {study_uid}:
            raise self.fail(
                f"study {study_uid}: the archive answered with another study ({', '.join(sorted(answered))})"
            )
        return found[0]

    def find_series(self, study_uid: str) -> list[dict[str, Any]]:
        """QIDO-RS series of one study, as DICOM JSON."""
        return self.call(
            f"study {study_uid}: search for series",
            lambda: self.client.search_for_series(study_instance_uid=study_uid, get_remaining=True),
        )

    def find_instances(self, study_uid: str, series_uid: str) -> list[dict[str, Any]]:
        """QIDO-RS instances of one series, as DICOM JSON."""
        return self.call(
            f"study {study_uid}: search for the instances of series {series_uid}",
            lambda: self.client.search_for_instances(
                study_instance_uid=study_uid, series_instance_uid=series_uid, get_remaining=True
            ),
        )

    # WADO-RS and STOW-RS -------------------------------------------------------------------------------

    def series_metadata(self, study_uid: str, series_uid: str) -> list[dict[str, Any]]:
        """WADO-RS metadata (headers, no pixel data) of every instance of one series, as DICOM JSON."""
        return self.call(
            f"study {study_uid}: metadata of series {series_uid}",
            lambda: self.client.retrieve_series_metadata(study_instance_uid=study_uid, series_instance_uid=series_uid),
        )

    def retrieve(self, study_uid: str, series_uid: str, sop_uid: str) -> Any:
        """WADO-RS one instance (a pydicom Dataset, in the archive's stored transfer syntax)."""
        return self.call(
            f"study {study_uid}: instance {sop_uid}",
            lambda: self.client.retrieve_instance(study_uid, series_uid, sop_uid),
        )

    def store(self, study_uid: str, datasets: list[Any]) -> Any:
        """STOW-RS datasets into one study; the archive's answer (a pydicom Dataset)."""
        return self.call(
            f"study {study_uid}: store {len(datasets)} objects",
            lambda: self.client.store_instances(datasets, study_instance_uid=study_uid),
        )


def _warn(text: str) -> None:
    """Print a warning line on stderr (it reaches the job's log, never the results)."""
    print(f"brainmets: {text}", file=sys.stderr, flush=True)


def value(record: Mapping[str, Any], tag: str) -> str:
    """The first value of a DICOM JSON attribute (tag as 8 hex digits) as text; '' when absent."""
    values = (record.get(tag) or {}).get("Value") or [""]
    first = values[0]
    if isinstance(first, dict):  # person names
        return str(first.get("Alphabetic", ""))
    return str(first)


def archive_for(url: str | None, config_section: Mapping[str, Any] | None) -> Archive:
    """The archive of a command: `url` or the configuration's dicomweb.url, with its transport settings."""
    settings = DicomwebSettings.from_mapping(config_section)
    chosen = url or settings.url
    if not chosen:
        raise BrainmetsError("no DICOMweb archive given: pass --dicomweb URL or set dicomweb.url in the configuration")
    return Archive(chosen, settings)

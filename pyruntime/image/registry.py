"""A client of the OCI distribution API (what `image pull` and `image push` talk to).

Why urllib3 and not hand-rolled HTTP: connection pooling across the parallel layer
downloads, redirects to blob storage that drop the Authorization header when they leave
the registry's host, chunked bodies, TLS.  It costs ~60 ms to import, so only this
module imports it, and only the pull and push verbs import this module.

Authentication follows the registry's challenge (a 401 with WWW-Authenticate):
``Basic`` sends the credentials; ``Bearer realm=...,service=...,scope=...`` fetches a
token from the realm (with the credentials, if any) and retries.  Tokens are kept per
scope for the life of the client.  Credentials come from ``--creds USER:PASS``, else
the auth file (``auth.json`` as podman and skopeo write it, or docker's config.json).
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3

from pyruntime.image import ImageError
from pyruntime.image.reference import DOCKER_HUB

MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
TIMEOUT = urllib3.Timeout(connect=15.0, read=60.0)
# No retries (a failed blob download is resumed by pull.py, from where it broke off), but
# redirects followed: registries send blobs from other hosts (the Authorization header is
# dropped when a redirect leaves the registry's host).
RETRIES = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5)
_PARAM_RE = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def parse_creds(text: str) -> Credentials:
    """``--creds USER[:PASS]`` (podman's form; an empty password is allowed)."""
    user, _, password = text.partition(":")
    if not user:
        raise ImageError("--creds: expected USER:PASSWORD")
    return Credentials(user, password)


def default_authfile() -> str | None:
    """podman's search: $REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json
    (/run/containers/<uid>/auth.json for root), then ~/.docker/config.json."""
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        return env
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/run/containers/{os.getuid()}"
    for path in (os.path.join(runtime_dir, "containers", "auth.json"),
                 os.path.join(runtime_dir, "auth.json"),
                 os.path.expanduser("~/.docker/config.json")):
        if os.path.isfile(path):
            return path
    return None


def creds_from_authfile(path: str, host: str, repository: str,
                        explicit: bool) -> Credentials | None:
    """The entry of an auth.json for ``host/repository``: the longest matching key of
    ``auths`` (podman allows ``host/namespace`` keys), ``auth`` being base64 USER:PASS."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read(1 << 20))
    except FileNotFoundError:
        if explicit:
            raise ImageError(f"--authfile {path}: no such file") from None
        return None
    except (OSError, ValueError) as e:
        raise ImageError(f"auth file {path}: {e}") from e
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        raise ImageError(f"auth file {path}: no \"auths\" object")
    hosts = {host}
    if host == DOCKER_HUB:
        hosts |= {"docker.io", "index.docker.io", "https://index.docker.io/v1/"}
    best: tuple[int, dict[str, Any]] | None = None
    for key, entry in auths.items():
        bare = re.sub(r"^https?://", "", key).rstrip("/")
        k_host, _, k_path = bare.partition("/")
        if key not in hosts and k_host not in hosts:
            continue
        if k_path and not (repository == k_path or repository.startswith(k_path + "/")):
            continue
        if isinstance(entry, dict) and (best is None or len(bare) > best[0]):
            best = (len(bare), entry)
    if best is None:
        return None
    auth = best[1].get("auth")
    if not isinstance(auth, str):
        return None
    try:
        user, sep, password = base64.b64decode(auth).decode().partition(":")
    except ValueError as e:
        raise ImageError(f"auth file {path}: entry for {host}: bad base64 in \"auth\"") from e
    if not sep:
        raise ImageError(f"auth file {path}: entry for {host}: \"auth\" is not USER:PASSWORD")
    return Credentials(user, password)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="...",scope="..."`` -> ("bearer", {params})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _PARAM_RE.finditer(rest)}
    return scheme.lower(), params


class Registry:
    """One registry host.  Thread-safe: the layer downloads share it."""

    def __init__(self, host: str, *, tls_verify: bool = True,
                 creds: Credentials | None = None) -> None:
        self.host = host
        self.tls_verify = tls_verify
        self.creds = creds
        self._scheme: str | None = None
        self._auth: dict[str, str] = {}  # scope -> Authorization header value
        self._lock = threading.Lock()
        self._https = urllib3.PoolManager(
            maxsize=8, retries=RETRIES, timeout=TIMEOUT,
            cert_reqs="CERT_REQUIRED" if tls_verify else "CERT_NONE",
        )
        self._plain = urllib3.PoolManager(maxsize=8, retries=RETRIES, timeout=TIMEOUT)
        if not tls_verify:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    # -- transport ----------------------------------------------------------------------

    def _base(self) -> str:
        """https://HOST; with --tls-verify=false, plain http when HTTPS does not answer
        (as podman and skopeo do)."""
        with self._lock:
            if self._scheme is None:
                self._scheme = "https"
                if not self.tls_verify:
                    try:
                        self._https.request("GET", f"https://{self.host}/v2/",
                                            timeout=urllib3.Timeout(connect=5.0, read=10.0),
                                            redirect=False)
                    except urllib3.exceptions.HTTPError:
                        self._scheme = "http"
            return f"{self._scheme}://{self.host}"

    def _pool(self, url: str) -> urllib3.PoolManager:
        return self._https if url.startswith("https:") else self._plain

    def request(self, method: str, path: str, scope: str, *,
                headers: dict[str, str] | None = None, body: Any = None,
                stream: bool = False, what: str = "") -> urllib3.BaseHTTPResponse:
        """One request to ``/v2/...`` (or an absolute URL the registry gave), answering an
        auth challenge once.  With ``stream`` the body is left unread."""
        url = path if "://" in path else self._base() + path
        what = what or f"{method} {url}"
        for attempt in (0, 1):
            hdrs = dict(headers or {})
            auth = self._auth.get(scope)
            if auth:
                hdrs["Authorization"] = auth
            if hasattr(body, "seek") and attempt:
                body.seek(0)
            try:
                resp = self._pool(url).request(
                    method, url, headers=hdrs, body=body, preload_content=not stream,
                    redirect=method in ("GET", "HEAD"),
                )
            except urllib3.exceptions.HTTPError as e:
                if isinstance(e, urllib3.exceptions.SSLError) or isinstance(
                        getattr(e, "reason", None), urllib3.exceptions.SSLError):
                    hint = (" (--tls-verify=false accepts any certificate, or plain HTTP)"
                            if self.tls_verify else "")
                    raise ImageError(f"{what}: TLS: {_reason(e)}{hint}") from e
                raise ImageError(f"{what}: {_reason(e)}") from e
            if resp.status != 401 or attempt:
                return resp
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.drain_conn()
            resp.release_conn()
            self._answer(challenge, scope, what)
        raise AssertionError("unreachable")

    def _answer(self, challenge: str, scope: str, what: str) -> None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if self.creds is None:
                raise ImageError(f"{what}: the registry wants a login "
                                 "(--creds USER:PASS or --authfile FILE)")
            self._auth[scope] = self.creds.basic()
        elif scheme == "bearer":
            self._auth[scope] = "Bearer " + self._token(params, scope, what)
        else:
            raise ImageError(f"{what}: unauthorized (challenge {challenge!r})")

    def _token(self, params: dict[str, str], scope: str, what: str) -> str:
        realm = params.get("realm")
        if not realm:
            raise ImageError(f"{what}: a Bearer challenge without a realm")
        # our scope, not the challenge's: a push needs pull,push for every request, and a
        # HEAD's challenge asks for pull only
        fields = {"service": params.get("service", ""), "scope": scope or params.get("scope")}
        fields = {k: v for k, v in fields.items() if v}
        headers = {"Authorization": self.creds.basic()} if self.creds else {}
        try:
            resp = self._pool(realm).request("GET", realm, fields=fields, headers=headers)
        except urllib3.exceptions.HTTPError as e:
            raise ImageError(f"token from {realm}: {_reason(e)}") from e
        if resp.status != 200:
            raise ImageError(f"token from {realm}: HTTP {resp.status}"
                             + (" (wrong or missing credentials?)" if resp.status == 401 else ""))
        try:
            doc = json.loads(resp.data)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise ImageError(f"token from {realm}: the answer holds no token")
        return token

    # -- the API ----------------------------------------------------------------------

    def check(self, resp: urllib3.BaseHTTPResponse, what: str, ok: tuple[int, ...]) -> None:
        """An ImageError naming ``what`` unless the status is one of ``ok``."""
        if resp.status in ok:
            return
        detail = ""
        try:
            errors = json.loads(resp.data or b"{}").get("errors") or []
            if errors:
                detail = ": " + "; ".join(
                    str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict)
                )
        except (ValueError, AttributeError):
            pass
        if resp.status == 401:
            detail += " (wrong or missing credentials?)"
        raise ImageError(f"{what}: HTTP {resp.status}{detail}")

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        """(bytes, media type) of a manifest or index by tag or digest."""
        sep = "@" if reference.startswith("sha256:") else ":"
        what = f"manifest {self.host}/{repository}{sep}{reference}"
        resp = self.request("GET", f"/v2/{repository}/manifests/{reference}",
                            pull_scope(repository), headers={"Accept": MANIFEST_ACCEPT},
                            what=what)
        if resp.status == 404:
            raise ImageError(f"{what}: not found")
        self.check(resp, what, (200,))
        return resp.data, (resp.headers.get("Content-Type") or "").split(";")[0].strip()

    def get_blob(self, repository: str, digest: str, offset: int = 0) -> urllib3.BaseHTTPResponse:
        """A blob's body, unread; from ``offset`` on with a Range request (the answer may
        still be the whole blob: status 200 rather than 206)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        what = f"blob {digest}"
        resp = self.request("GET", f"/v2/{repository}/blobs/{digest}", pull_scope(repository),
                            headers=headers, stream=True, what=what)
        if resp.status in (200, 206, 416):
            return resp
        resp.read()
        self.check(resp, what, ())
        raise AssertionError("unreachable")

    def has_blob(self, repository: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", push_scope(repository),
                            what=f"blob {digest}")
        if resp.status == 404:
            return False
        self.check(resp, f"blob {digest}", (200,))
        return True

    def upload_blob(self, repository: str, digest: str, body: Any, size: int) -> None:
        """A monolithic upload: POST for an upload URL, then one PUT with the content."""
        scope = push_scope(repository)
        what = f"upload of blob {digest}"
        resp = self.request("POST", f"/v2/{repository}/blobs/uploads/", scope, what=what)
        self.check(resp, what, (202,))
        location = resp.headers.get("Location")
        if not location:
            raise ImageError(f"{what}: the registry gave no upload location")
        if location.startswith("/"):
            location = self._base() + location
        sep = "&" if "?" in location else "?"
        resp = self.request(
            "PUT", f"{location}{sep}digest={digest}", scope, body=body, what=what,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        self.check(resp, what, (201,))

    def put_manifest(self, repository: str, reference: str, data: bytes,
                     media_type: str) -> None:
        what = f"manifest {self.host}/{repository}:{reference}"
        resp = self.request("PUT", f"/v2/{repository}/manifests/{reference}",
                            push_scope(repository), body=data, what=what,
                            headers={"Content-Type": media_type})
        self.check(resp, what, (201,))


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None)
    while getattr(reason, "reason", None) is not None and reason is not reason.reason:
        reason = reason.reason
    return str(reason or e)


def iter_body(resp: urllib3.BaseHTTPResponse, chunk: int = 1 << 16) -> Iterator[bytes]:
    """A response body in chunks, as sent (no content decoding)."""
    yield from resp.stream(chunk, decode_content=False)

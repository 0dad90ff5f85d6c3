"""A real registry for the pull/push tests: Debian's docker-registry (distribution 2.8)
on 127.0.0.1, with its storage in the test's tmp dir; skopeo to push what the tests
build; a throttling TCP proxy to interrupt a pull half-way on purpose.

The registry's access log (its stderr, kept in a file) is what the tests read to see
which blobs a pull fetched, and with which status (206: a resumed download).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

PACKAGES = {"docker-registry": "docker-registry", "skopeo": "skopeo", "htpasswd": "apache2-utils"}
_ACCESS_RE = re.compile(r'"(GET|HEAD|PUT|POST|PATCH) (/v2/\S+) HTTP/[0-9.]+" (\d{3}) ')


def require_tools() -> None:
    """Skip (fail under CI) unless the registry, skopeo and htpasswd are installed
    (`make setup` installs them)."""
    missing = [pkg for exe, pkg in PACKAGES.items() if shutil.which(exe) is None]
    if missing:
        reason = f"needs {', '.join(missing)} (apt-get install; `make setup` does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """One docker-registry process; ``host`` is 127.0.0.1:PORT."""

    def __init__(self, workdir: Path, htpasswd: tuple[str, str] | None = None,
                 token: dict[str, str] | None = None, tls: bool = False) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.storage = self.dir / "storage"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log = self.dir / "registry.log"
        auth = ""
        if htpasswd:
            user, password = htpasswd
            hashed = subprocess.run(["htpasswd", "-Bbn", user, password], check=True,
                                    capture_output=True, text=True).stdout
            (self.dir / "htpasswd").write_text(hashed)
            auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {self.dir / 'htpasswd'}\n"
        elif token:
            auth = "auth:\n  token:\n" + "".join(f"    {k}: {v}\n" for k, v in token.items())
        tls_config = ""
        if tls:  # HTTPS only, with a self-signed certificate (no client trusts it)
            key, cert = self.dir / "tls.key", self.dir / "tls.crt"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                            "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                            str(cert)], check=True, capture_output=True)
            tls_config = f"  tls:\n    certificate: {cert}\n    key: {key}\n"
        config = (
            "version: 0.1\n"
            "log:\n  level: info\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n" + tls_config
            + auth
        )
        (self.dir / "config.yml").write_text(config)
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(self.dir / "config.yml")],
                                     stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"docker-registry did not start:\n{self.log_text()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def mark(self) -> int:
        """A position in the access log; requests() after it."""
        return self.log.stat().st_size

    def requests(self, since: int = 0) -> list[tuple[str, str, int]]:
        """(method, path, status) of each request logged after ``since``."""
        with open(self.log, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        return [(m[1], m[2], int(m[3])) for m in _ACCESS_RE.finditer(text)]

    def blob_gets(self, since: int = 0) -> list[tuple[str, int]]:
        """(digest, status) of each blob GET after ``since``."""
        return [(path.rpartition("/")[2], status) for method, path, status in
                self.requests(since) if method == "GET" and "/blobs/" in path]

    def blob_data(self, digest: str) -> Path:
        """The file the registry serves for a blob (to tamper with)."""
        hexd = digest.partition(":")[2]
        return (self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data")

    def push(self, source: str, dest: str, *flags: str,
             creds: tuple[str, str] | None = None) -> None:
        """skopeo copy SOURCE docker://HOST/DEST (plain HTTP)."""
        argv = ["skopeo", "copy", "--dest-tls-verify=false", *flags]
        if creds:
            argv += ["--dest-creds", f"{creds[0]}:{creds[1]}"]
        argv += [source, f"docker://{self.host}/{dest}"]
        subprocess.run(argv, check=True, capture_output=True, timeout=300)


class ThrottledProxy:
    """127.0.0.1:PORT forwarding to ``target``, the answers held to ``rate`` bytes/s: a
    pull through it is slow enough to be killed half-way."""

    def __init__(self, target_port: int, rate: int) -> None:
        self.target_port = target_port
        self.rate = rate
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, 0), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.rate),
                             daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, rate: int) -> None:
        try:
            while not self.stopped.is_set():
                data = src.recv(16384 if not rate else max(1024, rate // 20))
                if not data:
                    break
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


class TokenServer:
    """The token service of a registry in token mode (docker's auth spec): checks Basic
    credentials, hands out a JWT signed with a self-made key whose certificate the
    registry trusts (its rootcertbundle), carried in the token's x5c header."""

    def __init__(self, workdir: Path, user: str, password: str) -> None:
        import http.server

        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = self.dir / "key.pem", self.dir / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "2", "-subj", "/CN=pyruntime-test-token", "-keyout", str(self.key),
                        "-out", str(self.cert)], check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.user, self.password = user, password
        self.issued: list[str] = []  # the scopes asked for
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                from urllib.parse import parse_qs, urlparse

                q = parse_qs(urlparse(self.path).query)
                want = "Basic " + base64.b64encode(
                    f"{server.user}:{server.password}".encode()).decode()
                if self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.end_headers()
                    return
                scope = q.get("scope", [""])[0]
                server.issued.append(scope)
                body = json.dumps({"token": server.token(q.get("service", [""])[0], scope)})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def registry_config(self) -> dict[str, str]:
        return {"realm": self.realm, "service": "pyruntime-test", "issuer": "pyruntime-test",
                "rootcertbundle": str(self.cert)}

    def token(self, service: str, scope: str) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        access = []
        if scope:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": "pyruntime-test", "sub": self.user, "aud": service, "exp": now + 600,
                  "nbf": now - 60, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), check=True,
                             capture_output=True).stdout
        return f"{signing_input}.{b64(sig)}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RegistryFront:
    """An HTTP front for a registry (GET and HEAD only) that makes it act unlike itself.
    With ``redirect_blobs`` it answers every blob request with a 307 to the registry under
    another host name (``localhost``), as registries send blobs from a storage host, and
    records the paths it redirected in ``redirected``. With ``ranges=False`` it drops the
    Range header and the Accept-Ranges answer: a registry without range support, answering
    200 and the whole blob."""

    def __init__(self, registry_port: int, *, redirect_blobs: bool = False,
                 ranges: bool = True) -> None:
        import http.server
        import urllib.error
        import urllib.request

        self.redirected: list[str] = []
        front = self
        drop_asked = {"host"} if ranges else {"host", "range"}
        drop_answer = {"content-length", "connection", "transfer-encoding"}
        if not ranges:
            drop_answer.add("accept-ranges")

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self, head: bool) -> None:
                if redirect_blobs and "/blobs/" in self.path:
                    front.redirected.append(self.path)
                    self.send_response(307)
                    self.send_header("Location", f"http://localhost:{registry_port}{self.path}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                req = urllib.request.Request(
                    f"http://127.0.0.1:{registry_port}{self.path}",
                    method="HEAD" if head else "GET",
                    headers={k: v for k, v in self.headers.items()
                             if k.lower() not in drop_asked})
                try:
                    resp = urllib.request.urlopen(req, timeout=60)
                except urllib.error.HTTPError as e:
                    resp = e
                body = resp.read()
                self.send_response(resp.status)
                for k, v in resp.headers.items():
                    if k.lower() not in drop_answer:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def do_GET(self) -> None:  # http.server's name
                self._serve(False)

            def do_HEAD(self) -> None:  # http.server's name
                self._serve(True)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

"""`image pull` / `image push` against a real registry (docker-registry on 127.0.0.1),
images built by the tests and pushed with skopeo; and the store under --image-root."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.leftovers import TOKEN_VAR
from support.oci_builder import (
    F,
    LayoutBuilder,
    busybox_layer,
    sample_layers,
)
from support.registry import (
    Registry,
    RegistryFront,
    ThrottledProxy,
    TokenServer,
    require_tools,
)
from support.runtime import Runtime, describe

pytestmark = [pytest.mark.root, pytest.mark.pyruntime_only]


def cid(runtime: Runtime, n: int = 1) -> str:
    """A container id of this test only: the cgroup path follows the id, and other
    suites may run containers on this machine at the same time."""
    return f"c{n}-{runtime.token}"

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# the bytes sample_layers() ships in vain, per layer (tests/test_image_cli.py counts them)
from test_image_cli import WASTE  # noqa: E402


@pytest.fixture
def registry(tmp_path: Path):
    require_tools()
    reg = Registry(tmp_path / "registry")
    yield reg
    reg.stop()


def ok(runtime: Runtime, *args: str, timeout: float = 120) -> str:
    return runtime.run(*args, check=True, timeout=timeout).stdout


def fails(runtime: Runtime, *args: str, env: dict[str, str] | None = None) -> str:
    """A verb that must fail with exactly one line on stderr; return that line."""
    __tracebackhide__ = True
    result = runtime.run(*args, timeout=120, env=env)
    assert result.returncode == 1, describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyruntime: "), describe(result)
    return lines[0]


def layout(tmp_path: Path, runtime: Runtime, tag: str = "v1", layers=None,
           name: str = "layout") -> tuple[LayoutBuilder, object]:
    """An OCI layout with one tagged image; its containers carry the test's token."""
    b = LayoutBuilder(tmp_path / name)
    config = {"Cmd": ["/bin/sh"], "Env": [f"{TOKEN_VAR}={runtime.token}"]}
    img = b.image(layers if layers is not None else sample_layers(), config=config)
    b.tag(img.descriptor, tag)
    return b, img


def store_files(root: Path) -> dict[str, list[str]]:
    """What the image store holds, by directory (empty dirs omitted)."""
    out = {}
    for sub in ("blobs/sha256", "layers/sha256", "images", "downloads", "tmp"):
        d = root / sub
        names = sorted(p.name for p in d.iterdir()) if d.is_dir() else []
        if names:
            out[sub] = names
    return out


def hexd(digest: str) -> str:
    return digest.partition(":")[2]


def test_pull_run_inspect_and_pull_again(tmp_path: Path, runtime: Runtime, registry) -> None:
    b, img = layout(tmp_path, runtime)
    registry.push(f"oci:{b.path}:v1", "team/sample:v1")
    name = f"{registry.host}/team/sample:v1"
    result = runtime.run("image", "pull", "--tls-verify=false", f"docker://{name}",
                         timeout=120)
    # stdout is not a terminal: the name alone, and no progress anywhere
    assert (result.returncode, result.stdout, result.stderr) == (0, name + "\n", ""), \
        describe(result)
    # the store is where --image-root says, and nothing of it under --root
    files = store_files(runtime.image_root)
    assert sorted(files["layers/sha256"]) == sorted(hexd(la.diff_id) for la in img.layers)
    assert {hexd(la.digest) for la in img.layers} <= set(files["blobs/sha256"])
    assert hexd(img.manifest_digest) in files["blobs/sha256"]
    assert "downloads" not in files and "tmp" not in files
    assert not (runtime.root / "images" / "layers").exists()
    assert ok(runtime, "image", "ls", "-q") == name + "\n"
    rec = json.loads(ok(runtime, "image", "ls", "--format", "json"))[0]
    assert rec["manifest_digest"] == img.manifest_digest

    out = ok(runtime, "run", "--image", name, "--rm", cid(runtime), "--", "sh", "-c",
             "cat /etc/conf; ls /data")
    assert out == "3" * 200 + "keep\n"

    # the waste report is the one of the same image loaded from the layout
    pulled = json.loads(ok(runtime, "image", "inspect", "--format", "json", name))
    assert [la["wasted_bytes"] for la in pulled["layers"]] == WASTE
    ok(runtime, "image", "load", "--name", "loaded", f"oci:{b.path}:v1")
    loaded = json.loads(ok(runtime, "image", "inspect", "--format", "json", "loaded"))
    assert pulled["layers"] == loaded["layers"]

    # a second pull fetches no blob (the manifest is asked for again, nothing else)
    mark = registry.mark()
    assert ok(runtime, "image", "pull", "--tls-verify=false", f"docker://{name}") == name + "\n"
    assert registry.blob_gets(mark) == []
    assert any("/manifests/v1" in path for _, path, _ in registry.requests(mark))


def test_pull_by_digest_and_shared_layers(tmp_path: Path, runtime: Runtime,
                                          registry) -> None:
    """A manifest by digest names the image `HOST:PORT/NAME@sha256:...` (as given), which
    run --image and inspect take; a later image sharing its base layer fetches only its
    own layer and config."""
    b, one = layout(tmp_path, runtime)
    config = {"Cmd": ["/bin/sh"], "Env": [f"{TOKEN_VAR}={runtime.token}"]}
    two = b.image([sample_layers()[0], [F("two", b"second\n")]], config=config)
    b.tag(two.descriptor, "v2")
    registry.push(f"oci:{b.path}:v1", "team/s:v1")
    registry.push(f"oci:{b.path}:v2", "team/s:v2")
    assert one.layers[0].digest == two.layers[0].digest  # the shared base
    name = f"{registry.host}/team/s@{one.manifest_digest}"
    mark = registry.mark()
    assert ok(runtime, "image", "pull", "--tls-verify=false", f"docker://{name}") == name + "\n"
    assert any(f"/manifests/{one.manifest_digest}" in path
               for _, path, _ in registry.requests(mark))
    assert ok(runtime, "image", "ls", "-q") == name + "\n"
    assert ok(runtime, "run", "--image", name, "--rm", cid(runtime), "--", "cat",
              "/etc/conf") == "3" * 200
    report = json.loads(ok(runtime, "image", "inspect", "--format", "json", name))
    assert [la["wasted_bytes"] for la in report["layers"]] == WASTE
    # v2: its config and its second layer, nothing of the base
    mark = registry.mark()
    name2 = f"{registry.host}/team/s:v2"
    ok(runtime, "image", "pull", "--tls-verify=false", f"docker://{name2}")
    assert sorted(registry.blob_gets(mark)) == sorted(
        [(two.config_digest, 200), (two.layers[1].digest, 200)])
    assert ok(runtime, "run", "--image", name2, "--rm", cid(runtime), "--", "cat", "/two") \
        == "second\n"
    # the registry's copy of v2's manifest altered (still valid JSON): by digest, the
    # content is checked, one line, nothing kept
    data = registry.blob_data(two.manifest_digest)
    raw = data.read_bytes()
    size = str(len(two.layers[1].blob)).encode()
    assert raw.count(b'"size": ' + size + b"}") == 1
    data.write_bytes(raw.replace(b'"size": ' + size + b"}", b'"size": ' + size + b"0}"))
    ok(runtime, "image", "rm", name2)
    ok(runtime, "image", "prune")
    before = store_files(runtime.image_root)
    line = fails(runtime, "image", "pull", "--tls-verify=false",
                 f"docker://{registry.host}/team/s@{two.manifest_digest}")
    assert "does not match its digest" in line and two.manifest_digest in line, line
    assert store_files(runtime.image_root) == before


def test_blobs_through_redirects(tmp_path: Path, runtime: Runtime, registry) -> None:
    """Registries send blobs from elsewhere (a 307 to a storage host): followed."""
    b, img = layout(tmp_path, runtime, layers=[busybox_layer([F("via", b"redirect\n")])])
    registry.push(f"oci:{b.path}:v1", "redir:v1")
    front = RegistryFront(registry.port, redirect_blobs=True)
    try:
        name = f"{front.host}/redir:v1"
        ok(runtime, "image", "pull", "--tls-verify=false", f"docker://{name}")
    finally:
        front.stop()
    assert any(hexd(img.layers[0].digest) in p for p in front.redirected), front.redirected
    assert ok(runtime, "run", "--image", name, "--rm", cid(runtime), "--", "cat", "/via") \
        == "redirect\n"


@pytest.mark.parametrize("how", ["layer", "config", "short", "long"])
def test_tampered_blob_is_refused_and_nothing_kept(tmp_path: Path, runtime: Runtime,
                                                   registry, how: str) -> None:
    """A blob in the registry's storage altered after the push (a byte flipped in a layer
    or in the config; a layer cut short or made longer): the pull fails with one line
    naming that digest, and the store keeps nothing (no layer, blob, record, download or
    temp file), even of the other layers, which verified."""
    b, img = layout(tmp_path, runtime)
    registry.push(f"oci:{b.path}:v1", "sample:v1")
    bad = img.config_digest if how == "config" else img.layers[1].digest
    data = registry.blob_data(bad)
    blob = bytearray(data.read_bytes())
    if how == "short":
        del blob[-10:]
    elif how == "long":
        blob += b"\0" * 10
    else:
        blob[len(blob) // 2] ^= 0xFF  # same size, other content
    data.write_bytes(bytes(blob))
    line = fails(runtime, "image", "pull", "--tls-verify=false",
                 f"docker://{registry.host}/sample:v1")
    assert bad in line, line
    if how in ("layer", "config"):
        assert "does not match its digest" in line, line
    elif how == "short":
        assert f"ends at byte {len(blob)}, its descriptor says {len(blob) + 10}" in line, line
    else:
        assert f"larger than the {len(blob) - 10} bytes" in line, line
    assert ok(runtime, "image", "ls", "-q") == ""
    files = store_files(runtime.image_root)
    assert files == {}, files  # no layer, blob, record, download or temp file


def test_docker_schema2_manifest(tmp_path: Path, runtime: Runtime, registry) -> None:
    b, _ = layout(tmp_path, runtime, layers=[busybox_layer([F("hello", b"schema2\n")])])
    registry.push(f"oci:{b.path}:v1", "dock:v1", "--format", "v2s2")
    name = f"{registry.host}/dock:v1"
    ok(runtime, "image", "pull", "--tls-verify=false", f"docker://{name}")
    rec = json.loads((runtime.image_root / "images" /
                      (name.replace(":", "%3A").replace("/", "%2F") + ".json")).read_text())
    assert rec["manifest_media_type"] == MT_DOCKER_MANIFEST
    assert ok(runtime, "run", "--image", name, "--rm", cid(runtime), "--", "cat", "/hello") \
        == "schema2\n"


@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
def test_index_with_two_platforms(tmp_path: Path, runtime: Runtime, registry, fmt) -> None:
    b = LayoutBuilder(tmp_path / "multi")
    config = {"Cmd": ["/bin/sh"], "Env": [f"{TOKEN_VAR}={runtime.token}"]}
    amd = b.image([busybox_layer([F("arch", b"amd64\n")])], config=config, arch="amd64")
    arm = b.image([busybox_layer([F("arch", b"arm64\n")])], config=config, arch="arm64")
    index = b.image_index([(amd.descriptor, {"os": "linux", "architecture": "amd64"}),
                           (arm.descriptor, {"os": "linux", "architecture": "arm64"})])
    b.tag(index, "v1")
    flags = ["--all"] + (["--format", "v2s2"] if fmt == "v2s2" else [])
    registry.push(f"oci:{b.path}:v1", "multi:v1", *flags)
    mark = registry.mark()
    name = f"{registry.host}/multi:v1"
    ok(runtime, "image", "pull", "--tls-verify=false", f"docker://{name}")
    fetched = {d for d, _ in registry.blob_gets(mark)}
    # only this platform's blobs were fetched (the layers differ by /arch)
    assert hexd(arm.layers[0].digest) not in {hexd(d) for d in fetched}
    assert ok(runtime, "run", "--image", name, "--rm", cid(runtime), "--", "cat", "/arch") \
        == "amd64\n"
    if fmt == "oci":  # skopeo keeps the OCI manifests as they are
        rec = json.loads(ok(runtime, "image", "ls", "--format", "json"))[0]
        assert rec["manifest_digest"] == amd.manifest_digest
    # an index without this machine's platform: one line, nothing fetched or kept
    s390 = b.image([busybox_layer([F("arch", b"s390x\n")])], config=config, arch="s390x")
    other = b.image_index([(arm.descriptor, {"os": "linux", "architecture": "arm64"}),
                           (s390.descriptor, {"os": "linux", "architecture": "s390x"})])
    b.tag(other, "v2")
    registry.push(f"oci:{b.path}:v2", "multi:v2", *flags)
    before = store_files(runtime.image_root)
    mark = registry.mark()
    line = fails(runtime, "image", "pull", "--tls-verify=false",
                 f"docker://{registry.host}/multi:v2")
    assert "linux/amd64" in line and "arm64" in line and "s390x" in line, line
    assert registry.blob_gets(mark) == []
    assert store_files(runtime.image_root) == before


def test_basic_auth(tmp_path: Path, runtime: Runtime) -> None:
    require_tools()
    reg = Registry(tmp_path / "registry", htpasswd=("alice", "s3cret"))
    try:
        b, _ = layout(tmp_path, runtime, layers=[busybox_layer([F("who", b"alice\n")])])
        reg.push(f"oci:{b.path}:v1", "private/img:v1", creds=("alice", "s3cret"))
        ref = f"docker://{reg.host}/private/img:v1"
        empty = tmp_path / "empty-auth.json"
        empty.write_text('{"auths": {}}')
        assert "wants a login" in fails(runtime, "image", "pull", "--tls-verify=false",
                                        "--authfile", str(empty), ref)
        assert "401" in fails(runtime, "image", "pull", "--tls-verify=false",
                              "--creds", "alice:wrong", ref)
        assert store_files(runtime.image_root).get("layers/sha256") is None
        # auth.json as skopeo (and podman, the same code) writes it: `skopeo login`
        authfile = tmp_path / "auth.json"
        subprocess.run(["skopeo", "login", "--tls-verify=false", "--authfile", str(authfile),
                        "-u", "alice", "-p", "s3cret", reg.host], check=True,
                       capture_output=True, timeout=120)
        token = base64.b64encode(b"alice:s3cret").decode()
        assert json.loads(authfile.read_text())["auths"][reg.host]["auth"] == token
        ok(runtime, "image", "pull", "--tls-verify=false", "--authfile", str(authfile), ref)
        ok(runtime, "image", "rm", f"{reg.host}/private/img:v1")
        ok(runtime, "image", "prune")
        env = dict(os.environ, REGISTRY_AUTH_FILE=str(authfile))
        assert runtime.run("image", "pull", "--tls-verify=false", ref, env=env,
                           timeout=120).returncode == 0
        ok(runtime, "image", "pull", "--tls-verify=false", "--creds", "alice:s3cret", ref)
        assert ok(runtime, "run", "--image", f"{reg.host}/private/img:v1", "--rm", cid(runtime),
                  "--", "cat", "/who") == "alice\n"
        # push with credentials, and without
        ok(runtime, "image", "push", "--tls-verify=false", "--creds", "alice:s3cret",
           f"{reg.host}/private/img:v1", f"docker://{reg.host}/private/copy:v2")
        assert "wants a login" in fails(
            runtime, "image", "push", "--tls-verify=false", "--authfile", str(empty),
            f"{reg.host}/private/img:v1", f"docker://{reg.host}/private/copy:v3")
    finally:
        reg.stop()


def test_token_auth(tmp_path: Path, runtime: Runtime) -> None:
    """The bearer-token flow: the registry's 401 names a realm, the token comes from
    there (for the credentials given), the request is repeated with it."""
    require_tools()
    tokens = TokenServer(tmp_path / "token", "bob", "pa55")
    reg = Registry(tmp_path / "registry", token=tokens.registry_config())
    try:
        b, _ = layout(tmp_path, runtime, layers=[busybox_layer([F("who", b"bob\n")])])
        reg.push(f"oci:{b.path}:v1", "tok/img:v1", creds=("bob", "pa55"))
        ref = f"docker://{reg.host}/tok/img:v1"
        empty = tmp_path / "empty-auth.json"
        empty.write_text('{"auths": {}}')
        line = fails(runtime, "image", "pull", "--tls-verify=false", "--authfile", str(empty),
                     ref)
        assert tokens.realm in line and "401" in line
        tokens.issued.clear()
        ok(runtime, "image", "pull", "--tls-verify=false", "--creds", "bob:pa55", ref)
        assert tokens.issued == ["repository:tok/img:pull"]
        # the same flow with the credentials of an auth.json (podman's, skopeo's format)
        authfile = tmp_path / "auth.json"
        for password, good in (("wrong", False), ("pa55", True)):
            token = base64.b64encode(f"bob:{password}".encode()).decode()
            authfile.write_text(json.dumps({"auths": {reg.host: {"auth": token}}}))
            tokens.issued.clear()
            args = ("image", "pull", "--tls-verify=false", "--authfile", str(authfile), ref)
            if good:
                ok(runtime, *args)
                assert tokens.issued == ["repository:tok/img:pull"]
            else:
                assert tokens.realm in fails(runtime, *args) and tokens.issued == []
        assert ok(runtime, "run", "--image", f"{reg.host}/tok/img:v1", "--rm", cid(runtime), "--",
                  "cat", "/who") == "bob\n"
        tokens.issued.clear()
        ok(runtime, "image", "push", "--tls-verify=false", "--creds", "bob:pa55",
           f"{reg.host}/tok/img:v1", f"docker://{reg.host}/tok/copy:v2")
        assert tokens.issued == ["repository:tok/copy:pull,push"]
        out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds", "bob:pa55",
                              f"docker://{reg.host}/tok/copy:v2"], check=True,
                             capture_output=True, text=True).stdout
        assert json.loads(out)["Name"] == f"{reg.host}/tok/copy"
    finally:
        reg.stop()
        tokens.stop()


def test_tls_verify(tmp_path: Path, runtime: Runtime) -> None:
    """A registry on HTTPS only, its certificate self-signed: refused by default (one line
    naming TLS), pulled with --tls-verify=false (over HTTPS: the registry speaks nothing
    else)."""
    require_tools()
    reg = Registry(tmp_path / "registry", tls=True)
    try:
        b, _ = layout(tmp_path, runtime, layers=[busybox_layer([F("tls", b"yes\n")])])
        reg.push(f"oci:{b.path}:v1", "sec:v1")
        ref = f"docker://{reg.host}/sec:v1"
        line = fails(runtime, "image", "pull", ref)
        assert "TLS" in line and "certificate verify failed" in line, line
        assert line.endswith("(--tls-verify=false accepts any certificate, or plain HTTP)")
        assert not runtime.image_root.exists()
        ok(runtime, "image", "pull", "--tls-verify=false", ref)
        assert any("/blobs/" in path for _, path, _ in reg.requests())
        assert ok(runtime, "run", "--image", f"{reg.host}/sec:v1", "--rm", cid(runtime), "--",
                  "cat", "/tls") == "yes\n"
    finally:
        reg.stop()


def test_push_then_pull_elsewhere(tmp_path: Path, runtime: Runtime, registry) -> None:
    """The whole loop with our tools: load (built elsewhere), push, pull, run."""
    b, img = layout(tmp_path, runtime)
    ok(runtime, "image", "load", "--name", "local", f"oci:{b.path}:v1")
    dest = f"{registry.host}/pushed/sample:v7"
    assert ok(runtime, "image", "push", "--tls-verify=false", "local", f"docker://{dest}") \
        == img.manifest_digest + "\n"
    inspect = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                              f"docker://{dest}"], check=True, capture_output=True)
    assert "sha256:" + __import__("hashlib").sha256(inspect.stdout).hexdigest() \
        == img.manifest_digest
    # a second push sends no blob again
    mark = registry.mark()
    ok(runtime, "image", "push", "--tls-verify=false", "local", f"docker://{dest}")
    assert not [r for r in registry.requests(mark) if r[0] in ("POST", "PUT")
                and "/blobs/" in r[1]]
    # into another store: everything comes from the registry
    other = Runtime(runtime.root, tmp_path / "other", runtime.token)
    ok(other, "image", "pull", "--tls-verify=false", f"docker://{dest}")
    assert ok(other, "run", "--image", dest, "--rm", cid(runtime), "--", "cat", "/etc/conf") \
        == "3" * 200


def test_docker_save_output_pushed_pulled_run(tmp_path: Path, runtime: Runtime,
                                             registry) -> None:
    """What `docker save` writes, loaded, pushed, pulled into another store, run: the
    manifest made for it is accepted by the registry and by skopeo."""
    from test_image_docker_archive import docker_save

    from support.oci_builder import layer_tar

    archive = tmp_path / "saved.tar"
    config = {"Cmd": ["/bin/cat", "/which"], "Env": [f"{TOKEN_VAR}={runtime.token}"]}
    docker_save(archive, [("one:1", [layer_tar(busybox_layer()),
                                     layer_tar([F("which", b"saved\n")])], {"config": config})])
    ok(runtime, "image", "load", f"docker-archive:{archive}")
    dest = f"{registry.host}/saved/one:1"
    digest = ok(runtime, "image", "push", "--tls-verify=false", "one:1", f"docker://{dest}")
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{dest}"],
                         check=True, capture_output=True, text=True).stdout
    assert json.loads(out)["Digest"] + "\n" == digest
    other = Runtime(runtime.root, tmp_path / "other", runtime.token)
    ok(other, "image", "pull", "--tls-verify=false", f"docker://{dest}")
    assert ok(other, "run", "--image", dest, "--rm", cid(runtime)) == "saved\n"


def test_pull_killed_then_repeated(tmp_path: Path, runtime: Runtime, registry) -> None:
    """Two big layers through a slow link: both download at once (parallel), the pull is
    SIGKILLed half-way, the next pull resumes both parts with range requests."""
    bigs = [os.urandom(2 << 20), os.urandom(2 << 20)]  # random: the gzip blobs stay ~2 MB
    b, img = layout(tmp_path, runtime,
                    layers=[busybox_layer(), [F("big0", bigs[0])], [F("big1", bigs[1])]])
    registry.push(f"oci:{b.path}:v1", "big:v1")
    big_layers = img.layers[1:]
    proxy = ThrottledProxy(registry.port, rate=256 << 10)  # ~8 s for each big blob
    try:
        ref = f"docker://{proxy.host}/big:v1"
        argv = [sys.executable, "-m", "pyruntime", "--root", str(runtime.root),
                "--image-root", str(runtime.image_root), "image", "pull",
                "--tls-verify=false", ref]  # cold: the kill hits the puller itself
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        parts = [runtime.image_root / "downloads" / (hexd(la.digest) + ".part")
                 for la in big_layers]
        deadline = time.monotonic() + 120
        while not all(p.is_file() and p.stat().st_size > (128 << 10) for p in parts):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the pull did not fetch both in 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        for p, la in zip(parts, big_layers, strict=True):
            assert 0 < p.stat().st_size < len(la.blob)
        # nothing half-made entered the store: no record, no layer of a big blob
        assert ok(runtime, "image", "ls", "-q") == ""
        stored = store_files(runtime.image_root).get("layers/sha256", [])
        assert not {hexd(la.diff_id) for la in big_layers} & set(stored)
    finally:
        proxy.stop()
    # again, straight from the registry: the parts are resumed with range requests
    mark = registry.mark()
    name = f"{registry.host}/big:v1"
    assert ok(runtime, "image", "pull", "--tls-verify=false", f"docker://{name}") == name + "\n"
    gets = registry.blob_gets(mark)
    for la in big_layers:
        assert (la.digest, 206) in gets and (la.digest, 200) not in gets, gets
    files = store_files(runtime.image_root)
    assert "downloads" not in files and "tmp" not in files
    out = ok(runtime, "run", "--image", name, "--rm", cid(runtime), "--", "/bin/busybox",
             "wc", "-c", "/big0", "/big1")
    assert out.split() == [str(len(bigs[0])), "/big0", str(len(bigs[1])), "/big1",
                           str(len(bigs[0]) + len(bigs[1])), "total"]


@pytest.mark.parametrize("part", ["prefix", "garbage"])
def test_resume_without_ranges_and_from_a_bad_part(tmp_path: Path, runtime: Runtime,
                                                   registry, part: str) -> None:
    """A part left by an earlier pull (its blob's first bytes, or bytes from elsewhere):
    a registry without ranges sends the whole blob, which replaces the part; one with
    ranges resumes, and when the result does not verify, the part is what was wrong:
    fetched once more from nothing, the pull works."""
    b, img = layout(tmp_path, runtime, layers=[busybox_layer([F("r", b"resumed\n")])])
    registry.push(f"oci:{b.path}:v1", "res:v1")
    layer = img.layers[0]
    downloads = runtime.image_root / "downloads"

    def plant() -> None:
        downloads.mkdir(parents=True, exist_ok=True)
        half = len(layer.blob) // 2
        data = layer.blob[:half] if part == "prefix" else os.urandom(half)
        (downloads / (hexd(layer.digest) + ".part")).write_bytes(data)

    plant()
    front = RegistryFront(registry.port, ranges=False)
    try:
        mark = registry.mark()
        name = f"{front.host}/res:v1"
        ok(runtime, "image", "pull", "--tls-verify=false", f"docker://{name}")
    finally:
        front.stop()
    assert registry.blob_gets(mark).count((layer.digest, 200)) == 1
    assert ok(runtime, "run", "--image", name, "--rm", cid(runtime), "--", "cat", "/r") \
        == "resumed\n"
    # straight from the registry, which honours ranges
    ok(runtime, "image", "rm", name)
    ok(runtime, "image", "prune")
    plant()
    mark = registry.mark()
    name = f"{registry.host}/res:v1"
    ok(runtime, "image", "pull", "--tls-verify=false", f"docker://{name}")
    gets = [g for g in registry.blob_gets(mark) if g[0] == layer.digest]
    assert gets == ([(layer.digest, 206)] if part == "prefix"
                    else [(layer.digest, 206), (layer.digest, 200)]), gets
    assert store_files(runtime.image_root).get("downloads") is None
    assert ok(runtime, "run", "--image", name, "--rm", cid(runtime), "--", "cat", "/r") \
        == "resumed\n"


def test_two_pulls_at_once(tmp_path: Path, runtime: Runtime, registry) -> None:
    """Two pulls of one image into one store at the same time (a slow link keeps both
    busy): both succeed, and each blob crosses the link once (the second waits for the
    first's download of it, then takes it)."""
    bigs = [os.urandom(1 << 20), os.urandom(1 << 20)]
    b, img = layout(tmp_path, runtime,
                    layers=[busybox_layer(), [F("big0", bigs[0])], [F("big1", bigs[1])]])
    registry.push(f"oci:{b.path}:v1", "twice:v1")
    proxy = ThrottledProxy(registry.port, rate=512 << 10)
    try:
        name = f"{proxy.host}/twice:v1"
        argv = [sys.executable, "-m", "pyruntime", "--root", str(runtime.root),
                "--image-root", str(runtime.image_root), "image", "pull",
                "--tls-verify=false", f"docker://{name}"]
        mark = registry.mark()
        procs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        proxy.stop()
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o for o, _ in outs] == [name + "\n"] * 2, outs
    gets = registry.blob_gets(mark)
    for la in img.layers:
        assert gets.count((la.digest, 200)) == 1, gets
    assert "downloads" not in store_files(runtime.image_root)
    assert ok(runtime, "run", "--image", name, "--rm", cid(runtime), "--", "/bin/busybox",
              "wc", "-c", "/big1").split()[0] == str(len(bigs[1]))


def test_progress_on_a_terminal_only(tmp_path: Path, runtime: Runtime, registry) -> None:
    import pty

    b, img = layout(tmp_path, runtime)
    registry.push(f"oci:{b.path}:v1", "prog:v1")
    name = f"{registry.host}/prog:v1"
    master, slave = pty.openpty()
    proc = runtime.popen("image", "pull", "--tls-verify=false", f"docker://{name}",
                         stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    proc.stderr.close()
    text = out.decode().replace("\r\n", "\n")
    for layer in img.layers:  # one row per layer: done, bytes of bytes, a rate
        rows = [r for r in text.split("\n") if hexd(layer.digest)[:12] in r]
        assert rows and "done" in rows[-1] and "/s" in rows[-1], text
    assert text.endswith(name + "\n")
    # not a terminal: the name alone (every other test checks that too)
    ok(runtime, "image", "rm", name)
    assert ok(runtime, "image", "prune")
    assert ok(runtime, "image", "pull", "--tls-verify=false", f"docker://{name}") == name + "\n"


def test_bad_pulls_leave_nothing(tmp_path: Path, runtime: Runtime, registry) -> None:
    from support.registry import free_port

    b, img = layout(tmp_path, runtime, layers=[busybox_layer()])
    registry.push(f"oci:{b.path}:v1", "ok:v1")
    host = registry.host
    cases = [
        (["--tls-verify=false", f"docker://127.0.0.1:{free_port()}/x:v1"], "refused"),
        ([f"docker://{host}/ok:v1"], "(--tls-verify=false accepts any certificate, or plain HTTP)"),
        (["--tls-verify=false", f"docker://{host}/ok:nope"], f"{host}/ok:nope: not found"),
        (["--tls-verify=false", f"docker://{host}/ok@sha256:{'0' * 64}"], "not found"),
        (["--tls-verify=false", f"docker://{host}/Bad/Name"], "bad repository name"),
        (["--tls-verify=false", f"docker://{host}/ok:-v1"], "bad tag"),
        (["--creds", "a:b", "--authfile", "/x", f"docker://{host}/ok:v1"], "exclude"),
        (["--authfile", str(tmp_path / "nope.json"), f"docker://{host}/ok:v1"],
         "no such file"),
    ]
    for args, words in cases:
        assert words in fails(runtime, "image", "pull", *args), args
        assert not runtime.image_root.exists(), args
    assert "no image named" in fails(runtime, "image", "push", "--tls-verify=false", "nosuch",
                                     f"docker://{host}/x:v1")


def test_only_pull_and_push_import_the_http_client(tmp_path: Path, runtime: Runtime,
                                                   registry) -> None:
    from test_hot_path_imports import imported

    b, _ = layout(tmp_path, runtime, layers=[busybox_layer()])
    registry.push(f"oci:{b.path}:v1", "imp:v1")
    name = f"{registry.host}/imp:v1"
    images = ["--image-root", str(runtime.image_root)]
    assert "urllib3" in imported(tmp_path, runtime.root, *images, "image", "pull",
                                 "--tls-verify=false", f"docker://{name}")
    for args in (["image", "ls"], ["image", "inspect", name],
                 ["run", "--image", name, "--rm", cid(runtime), "--", "true"]):
        assert "urllib3" not in imported(tmp_path, runtime.root, *images, *args), args


@pytest.mark.parametrize("verb", ["load", "pull"])
def test_killed_at_any_instant_the_store_stays_sound(tmp_path: Path, runtime: Runtime,
                                                     registry, verb: str) -> None:
    """SIGKILL a load or pull at a sweep of instants: the store never holds a half layer,
    every verb still works on it, prune clears what was left, the next try succeeds."""
    b, img = layout(tmp_path, runtime)
    registry.push(f"oci:{b.path}:v1", "sweep:v1")
    src = f"oci:{b.path}:v1" if verb == "load" else f"docker://{registry.host}/sweep:v1"
    name = "v1" if verb == "load" else f"{registry.host}/sweep:v1"
    argv = [sys.executable, "-m", "pyruntime", "--root", str(runtime.root), "--image-root",
            str(runtime.image_root), "image", verb,
            *(["--tls-verify=false"] if verb == "pull" else []), src]
    diff_ids = {hexd(la.diff_id) for la in img.layers}
    for delay in (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        layers = runtime.image_root / "layers" / "sha256"
        for d in (layers.iterdir() if layers.is_dir() else ()):
            assert d.name in diff_ids and (d / "layer.json").is_file(), (delay, d)
        assert ok(runtime, "image", "ls", "-q") in ("", name + "\n"), delay
        if ok(runtime, "image", "ls", "-q"):
            ok(runtime, "image", "rm", name)
        ok(runtime, "image", "prune")
        assert store_files(runtime.image_root) == {}, delay
    ok(runtime, "image", verb, *(["--tls-verify=false"] if verb == "pull" else []), src)
    assert ok(runtime, "run", "--image", name, "--rm", cid(runtime), "--", "cat",
              "/etc/conf") == "3" * 200

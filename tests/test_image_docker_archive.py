"""`image load docker-archive:FILE[:NAME:TAG]`: what `docker save` and skopeo write."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.leftovers import TOKEN_VAR
from support.oci_builder import F, LayoutBuilder, busybox_layer, layer_tar
from support.registry import require_tools
from support.runtime import Runtime, describe

pytestmark = [pytest.mark.root, pytest.mark.pyruntime_only]


def cid(runtime: Runtime, n: int = 1) -> str:
    """A container id of this test only: the cgroup path follows the id, and other
    suites may run containers on this machine at the same time."""
    return f"c{n}-{runtime.token}"


def ok(runtime: Runtime, *args: str) -> str:
    return runtime.run(*args, check=True, timeout=120).stdout


def fails(runtime: Runtime, *args: str) -> str:
    __tracebackhide__ = True
    result = runtime.run(*args, timeout=120)
    assert result.returncode == 1, describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyruntime: "), describe(result)
    return lines[0]


def write_tar(path: Path, files: dict[str, bytes]) -> None:
    """A plain tar of these regular files, in this order."""
    with tarfile.open(path, "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def docker_save(path: Path, images: list[tuple[str, list[bytes], dict]],
                bad_config_name: bool = False) -> None:
    """A tar laid out as `docker save` (before docker 25) writes it: <id>/layer.tar,
    <config hex>.json, manifest.json, repositories."""
    entries, files = [], {}
    for repotag, tars, config in images:
        diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]
        cfg = dict(config, architecture="amd64", os="linux",
                   rootfs={"type": "layers", "diff_ids": diff_ids})
        raw = json.dumps(cfg).encode()
        chex = hashlib.sha256(raw).hexdigest()
        if bad_config_name:
            chex = "0" * 64
        files[f"{chex}.json"] = raw
        layers = []
        for t in tars:
            lid = hashlib.sha256(b"id" + t).hexdigest()
            files[f"{lid}/layer.tar"] = t
            files[f"{lid}/VERSION"] = b"1.0"
            layers.append(f"{lid}/layer.tar")
        entries.append({"Config": f"{chex}.json", "RepoTags": [repotag], "Layers": layers})
    files["manifest.json"] = json.dumps(entries).encode()
    write_tar(path, files)


def test_docker_save_archive(tmp_path: Path, runtime: Runtime) -> None:
    env = {"Cmd": ["/bin/cat", "/which"], "Env": [f"{TOKEN_VAR}={runtime.token}"]}
    base = layer_tar(busybox_layer())
    archive = tmp_path / "saved.tar"
    docker_save(archive, [
        ("docker.io/library/one:1", [base, layer_tar([F("which", b"one\n")])], {"config": env}),
        ("example.com/two:2", [base, layer_tar([F("which", b"two\n")])], {"config": env}),
    ])
    assert "holds 2 images" in fails(runtime, "image", "load", f"docker-archive:{archive}")
    assert "no image tagged 'three:3' (tags: example.com/two:2, one:1)" in fails(
        runtime, "image", "load", f"docker-archive:{archive}:three:3")
    assert ok(runtime, "image", "load", f"docker-archive:{archive}:one:1") == "one:1\n"
    assert ok(runtime, "image", "load", f"docker-archive:{archive}:example.com/two:2") \
        == "example.com/two:2\n"
    assert ok(runtime, "run", "--image", "one:1", "--rm", cid(runtime)) == "one\n"
    assert ok(runtime, "run", "--image", "example.com/two:2", "--rm", cid(runtime, 2)) == "two\n"
    assert len(list((runtime.image_root / "layers" / "sha256").iterdir())) == 3  # base once


def docker25_save(path: Path, repotag: str, tars: list[bytes], config: dict) -> None:
    """A tar laid out as `docker save` writes it since docker 25: an OCI layout
    (oci-layout, index.json, blobs/sha256/<hex>, layers uncompressed) plus the legacy
    manifest.json whose Config and Layers name those blobs."""
    files: dict[str, bytes] = {}

    def blob(data: bytes) -> dict:
        hexd = hashlib.sha256(data).hexdigest()
        files[f"blobs/sha256/{hexd}"] = data
        return {"digest": f"sha256:{hexd}", "size": len(data)}

    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]
    cfg = blob(json.dumps(dict(config, architecture="amd64", os="linux",
                               rootfs={"type": "layers", "diff_ids": diff_ids})).encode())
    layers = [blob(t) for t in tars]
    manifest = blob(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **la}
                   for la in layers]}).encode())
    files["oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
         "annotations": {"io.containerd.image.name": f"docker.io/library/{repotag}",
                         "org.opencontainers.image.ref.name": repotag.partition(":")[2]}}]
    }).encode()
    files["manifest.json"] = json.dumps([{
        "Config": "blobs/" + cfg["digest"].replace(":", "/"), "RepoTags": [repotag],
        "Layers": ["blobs/" + la["digest"].replace(":", "/") for la in layers],
    }]).encode()
    write_tar(path, files)


def test_docker25_save_archive(tmp_path: Path, runtime: Runtime) -> None:
    """Docker 25's layout; the same (empty) layer twice, as a Dockerfile's ENV/WORKDIR
    steps make, is one blob named twice."""
    env = {"Cmd": ["/bin/cat", "/which"], "Env": [f"{TOKEN_VAR}={runtime.token}"]}
    empty = layer_tar([])
    tars = [layer_tar(busybox_layer()), empty, layer_tar([F("which", b"new\n")]), empty]
    archive = tmp_path / "saved25.tar"
    docker25_save(archive, "new:25", tars, {"config": env})
    assert ok(runtime, "image", "load", f"docker-archive:{archive}") == "new:25\n"
    assert ok(runtime, "run", "--image", "new:25", "--rm", cid(runtime)) == "new\n"
    assert len(list((runtime.image_root / "layers" / "sha256").iterdir())) == 3
    # the same archive by NAME:TAG, and the docker.io spelling of it
    assert ok(runtime, "image", "load", f"docker-archive:{archive}:docker.io/library/new:25") \
        == "new:25\n"


def test_tampered_archive_leaves_nothing(tmp_path: Path, runtime: Runtime) -> None:
    archive = tmp_path / "bad.tar"
    docker_save(archive, [("bad:1", [layer_tar(busybox_layer())], {})], bad_config_name=True)
    assert "does not match its name" in fails(runtime, "image", "load",
                                              f"docker-archive:{archive}")
    # a layer that is not what the config's diff_ids say
    archive2 = tmp_path / "bad2.tar"
    docker_save(archive2, [("bad:2", [layer_tar(busybox_layer())], {})])
    with tarfile.open(archive2) as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}
    for name in members:
        if name.endswith("layer.tar"):
            members[name] = layer_tar(busybox_layer([F("extra", b"x")]))
    write_tar(archive2, members)
    assert "the image config says" in fails(runtime, "image", "load",
                                            f"docker-archive:{archive2}")
    assert ok(runtime, "image", "ls", "-q") == ""
    for sub in ("layers/sha256", "blobs/sha256", "images", "tmp"):
        d = runtime.image_root / sub
        assert not d.is_dir() or list(d.iterdir()) == [], sub


def test_skopeo_docker_archive(tmp_path: Path, runtime: Runtime) -> None:
    require_tools()
    b = LayoutBuilder(tmp_path / "layout")
    img = b.image([busybox_layer([F("hello", b"from skopeo\n")])],
                  config={"Cmd": ["/bin/cat", "/hello"],
                          "Env": [f"{TOKEN_VAR}={runtime.token}"]})
    b.tag(img.descriptor, "v1")
    archive = tmp_path / "skopeo.tar"
    subprocess.run(["skopeo", "copy", f"oci:{b.path}:v1", f"docker-archive:{archive}:hello:v9"],
                   check=True, capture_output=True, timeout=120)
    assert ok(runtime, "image", "load", f"docker-archive:{archive}") == "hello:v9\n"
    assert ok(runtime, "run", "--image", "hello:v9", "--rm", cid(runtime)) == "from skopeo\n"


def test_image_root_option_env_and_refusal(tmp_path: Path, runtime: Runtime) -> None:
    """The store is where --image-root (else $PYRUNTIME_IMAGE_ROOT) says, never in --root."""
    import os

    from support.runtime import runtime_command

    archive = tmp_path / "one.tar"
    docker_save(archive, [("one:1", [layer_tar(busybox_layer())], {})])
    base = [*runtime_command(), "--root", str(runtime.root)]
    env_root = tmp_path / "from-env"
    env = dict(os.environ, PYRUNTIME_IMAGE_ROOT=str(env_root))
    subprocess.run([*base, "image", "load", f"docker-archive:{archive}"], env=env,
                   check=True, capture_output=True, timeout=120)
    assert len(list((env_root / "layers" / "sha256").iterdir())) == 1
    # the option wins over the environment
    opt_root = tmp_path / "from-option"
    subprocess.run([*base, "--image-root", str(opt_root), "image", "load",
                    f"docker-archive:{archive}"], env=env, check=True, capture_output=True,
                   timeout=120)
    assert (opt_root / "images").is_dir() and not (runtime.root / "images").exists()
    # inside the state root: refused, nothing made
    inside = runtime.root / "store"
    result = subprocess.run([*base, "--image-root", str(inside), "image", "load",
                             f"docker-archive:{archive}"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert result.stderr == (f"pyruntime: --image-root {inside}: must not be inside the "
                             f"state root {runtime.root}\n")
    assert not inside.exists()


def test_default_image_root_is_var_lib_pyruntime(tmp_path: Path, runtime: Runtime) -> None:
    """Neither option nor environment: the store is /var/lib/pyruntime (on disk, kept
    across reboots).  Shown in a private mount namespace whose /var/lib is a directory of
    this test, so the host's store is never touched; cold (a server's worker would run
    in the server's mount namespace)."""
    import os
    import shlex

    archive = tmp_path / "one.tar"
    docker_save(archive, [("one:1", [layer_tar(busybox_layer())], {})])
    fake = tmp_path / "var-lib"
    fake.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYRUNTIME_IMAGE_ROOT", "PYRUNTIME_SERVE_SOCKET")}
    verb = shlex.join([sys.executable, "-m", "pyruntime", "--root", str(runtime.root),
                       "image", "load", f"docker-archive:{archive}"])
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f"mount --bind {shlex.quote(str(fake))} /var/lib && exec {verb}"],
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout == "one:1\n", describe(result)
    assert len(list((fake / "pyruntime" / "layers" / "sha256").iterdir())) == 1
    assert (fake / "pyruntime" / "images").is_dir()
    assert not (runtime.root / "images").exists()

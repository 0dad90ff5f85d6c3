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
    with tarfile.open(path, "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


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
    with tarfile.open(archive2, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
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

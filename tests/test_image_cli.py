"""Images through the real CLI: `image load|ls|inspect|bundle|unbundle|rm|prune` and
`run --image NAME [--rm] ID [-- ARGS...]` (overlay2 rootfs over the shared layers)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.leftovers import TOKEN_VAR
from support.oci_builder import (
    BIG,
    F,
    LayoutBuilder,
    busybox_layer,
    sample_layers,
    write_archive,
)
from support.runtime import Runtime, describe

pytestmark = [pytest.mark.root, pytest.mark.pyruntime_only]

# what sample_layers() ships in vain, counted by hand (see tests/test_image_inspect.py):
# layer 0 loses /data/big, /etc/conf v1, /opq/a, /opq/sub/b, the /hl2 inode, /gone/{x,y};
# layer 1 loses /etc/conf v2 and /tmpfile; /hl/orig's inode still shows as /hl/link.
WASTE = [BIG + 100 + 500 + 700 + 300 + 10 + 20, 150 + 2000, 0]


def build(tmp_path: Path, runtime: Runtime, tag: str = "sample", layers=None,
          name: str | None = None) -> LayoutBuilder:
    """An OCI layout holding one tagged image; its containers carry the test's token."""
    b = LayoutBuilder(tmp_path / (name or f"layout-{tag}"))
    config = {"Cmd": ["/bin/sh"], "Env": [f"{TOKEN_VAR}={runtime.token}"]}
    img = b.image(layers if layers is not None else sample_layers(), config=config)
    b.tag(img.descriptor, tag)
    return b


def cid(runtime: Runtime, n: int = 1) -> str:
    """A container id of this test only: cgroups follow the id, and other suites may run
    containers on this machine at the same time."""
    return f"c{n}-{runtime.token}"


def ok(runtime: Runtime, *args: str, timeout: float = 60) -> str:
    return runtime.run(*args, check=True, timeout=timeout).stdout


def fails(runtime: Runtime, *args: str) -> str:
    """Run a verb that must fail with exactly one line on stderr; return that line."""
    __tracebackhide__ = True
    result = runtime.run(*args, timeout=60)
    assert result.returncode != 0, describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyruntime: "), describe(result)
    return lines[0]


def layer_dirs(runtime: Runtime) -> dict[str, int]:
    """Stored layers: hex id -> inode of its directory."""
    d = runtime.image_root / "layers" / "sha256"
    return {p.name: p.stat().st_ino for p in d.iterdir()} if d.is_dir() else {}


def bundle_dir(runtime: Runtime, cid: str) -> Path:
    return runtime.root / "images" / "containers" / cid


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(path) in line]


def assert_no_trace(runtime: Runtime, cid: str) -> None:
    __tracebackhide__ = True
    assert not bundle_dir(runtime, cid).exists()
    assert not (runtime.root / cid).exists()
    assert mounts_under(runtime.root) == []
    assert runtime.ids() == []


def test_load_layout_and_archive_ls(tmp_path: Path, runtime: Runtime) -> None:
    b = build(tmp_path, runtime)
    assert ok(runtime, "image", "load", f"oci:{b.path}:sample") == "sample\n"
    layers = layer_dirs(runtime)
    assert len(layers) == 3
    archive = tmp_path / "sample.tar"
    write_archive(b.path, archive)
    out = ok(runtime, "image", "load", "--name", "again", f"oci-archive:{archive}:sample")
    assert out == "again\n"
    assert layer_dirs(runtime) == layers  # the same layers: nothing unpacked again
    assert ok(runtime, "image", "ls", "-q") == "again\nsample\n"
    rows = json.loads(ok(runtime, "image", "ls", "--format", "json"))
    assert [(r["name"], r["layers"]) for r in rows] == [("again", 3), ("sample", 3)]
    table = ok(runtime, "image", "ls").splitlines()
    assert table[0].split()[:3] == ["NAME", "LAYERS", "SIZE"]
    assert [line.split()[0] for line in table[1:]] == ["again", "sample"]
    assert runtime.ids() == []  # the image store is not a container


def test_inspect_json_and_text(tmp_path: Path, runtime: Runtime) -> None:
    b = build(tmp_path, runtime)
    ok(runtime, "image", "load", f"oci:{b.path}:sample")
    report = json.loads(ok(runtime, "image", "inspect", "--format", "json", "sample"))
    assert [layer["wasted_bytes"] for layer in report["layers"]] == WASTE
    assert report["wasted_bytes"] == sum(WASTE)
    assert len(report["layers"]) == 3
    text = ok(runtime, "image", "inspect", "sample")
    assert "Wasted bytes:" in text and f"({sum(WASTE)})" in text
    assert "/data/big" in text
    assert "no image named" in fails(runtime, "image", "inspect", "nosuch")


def test_run_image_shows_the_overlay_view(tmp_path: Path, runtime: Runtime) -> None:
    ok(runtime, "image", "load", f"oci:{build(tmp_path, runtime).path}:sample")
    out = ok(runtime, "run", "--image", "sample", "--rm", cid(runtime), "--",
             "sh", "-c", "cat /etc/conf; echo; ls /data; ls /opq; cat /data/big || echo gone")
    assert out.splitlines() == ["3" * 200, "keep", "new", "gone"]
    assert_no_trace(runtime, cid(runtime))
    assert len(layer_dirs(runtime)) == 3  # shared layers stay


def test_default_command_and_exit_status(tmp_path: Path, runtime: Runtime) -> None:
    layers = [busybox_layer([F("hello", b"from the image\n")])]
    b = LayoutBuilder(tmp_path / "lay")
    img = b.image(layers, config={"Entrypoint": ["/bin/sh", "-c"],
                                  "Cmd": ["cat /hello; exit 3"],
                                  "Env": [f"{TOKEN_VAR}={runtime.token}"]})
    b.tag(img.descriptor, "hello")
    ok(runtime, "image", "load", f"oci:{b.path}:hello")
    result = runtime.run("run", "--image", "hello", cid(runtime), timeout=60)
    assert result.returncode == 3, describe(result)
    assert result.stdout == "from the image\n"
    # ARGS replace Cmd; the Entrypoint stays
    assert ok(runtime, "run", "--image", "hello", cid(runtime, 2), "--", "echo args") == "args\n"
    assert_no_trace(runtime, cid(runtime))
    assert_no_trace(runtime, cid(runtime, 2))


def test_second_container_unpacks_nothing(tmp_path: Path, runtime: Runtime) -> None:
    ok(runtime, "image", "load", f"oci:{build(tmp_path, runtime).path}:sample")
    before = layer_dirs(runtime)
    out = ok(runtime, "run", "--image", "sample", "--rm", cid(runtime), "--",
             "sh", "-c", "echo changed > /etc/conf; cat /etc/conf")
    assert out == "changed\n"
    assert layer_dirs(runtime) == before
    out = ok(runtime, "run", "--image", "sample", "--rm", cid(runtime, 2), "--", "cat", "/etc/conf")
    assert out == "3" * 200  # c1 wrote to its own upper layer only
    assert layer_dirs(runtime) == before  # same layer dirs, same inodes
    assert not any(p.name.startswith("tmp") for p in (runtime.image_root / "tmp").iterdir())


def test_detached_run_then_delete(tmp_path: Path, runtime: Runtime) -> None:
    ok(runtime, "image", "load", f"oci:{build(tmp_path, runtime).path}:sample")
    ok(runtime, "run", "--image", "sample", "-d", cid(runtime), "--", "/bin/busybox", "sh", "-c",
       "echo hi > /written; exec /bin/busybox sleep 60")
    runtime.wait_status(cid(runtime), "running")
    d = bundle_dir(runtime, cid(runtime))
    assert runtime.ids() == [cid(runtime)]
    state = json.loads((runtime.root / cid(runtime) / "state.json").read_text())
    assert state["image_bundle"] == str(d)
    assert runtime.state(cid(runtime))["bundle"] == str(d)
    assert any(f" {d}/rootfs " in line for line in mounts_under(d))
    for _ in range(100):
        if (d / "upper" / "written").exists():
            break
        time.sleep(0.05)
    assert (d / "upper" / "written").read_text() == "hi\n"
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["process"]["args"][:2] == ["/bin/busybox", "sh"]
    assert "with id exists" in fails(runtime, "run", "--image", "sample", "-d", cid(runtime))
    assert d.is_dir()
    runtime.delete(cid(runtime), force=True)
    assert_no_trace(runtime, cid(runtime))
    assert len(layer_dirs(runtime)) == 3


def test_keep_then_delete(tmp_path: Path, runtime: Runtime) -> None:
    ok(runtime, "image", "load", f"oci:{build(tmp_path, runtime).path}:sample")
    ok(runtime, "run", "--image", "sample", "--keep", cid(runtime), "--", "true")
    assert runtime.status(cid(runtime)) == "stopped"
    assert bundle_dir(runtime, cid(runtime)).is_dir()
    runtime.delete(cid(runtime))
    assert_no_trace(runtime, cid(runtime))


def test_rm_then_prune(tmp_path: Path, runtime: Runtime) -> None:
    sample = build(tmp_path, runtime)
    # "small" shares sample's base layer (same members, same bytes: same diff_id)
    small = build(tmp_path, runtime, "small", [sample_layers()[0], [F("small", b"s")]])
    ok(runtime, "image", "load", f"oci:{sample.path}:sample")
    ok(runtime, "image", "load", f"oci:{small.path}:small")
    assert len(layer_dirs(runtime)) == 4
    assert ok(runtime, "image", "prune") == ""  # every layer is used
    ok(runtime, "run", "--image", "sample", "-d", cid(runtime), "--", "/bin/busybox", "sleep", "60")
    ok(runtime, "image", "rm", "sample")
    assert ok(runtime, "image", "ls", "-q") == "small\n"
    assert ok(runtime, "image", "prune") == ""  # c1's overlay still uses sample's layers
    runtime.delete(cid(runtime), force=True)
    removed = ok(runtime, "image", "prune").split()
    assert len(removed) == 2 and all(r.startswith("sha256:") for r in removed)
    left = layer_dirs(runtime)
    assert len(left) == 2 and not {r.partition(":")[2] for r in removed} & set(left)
    assert ok(runtime, "run", "--image", "small", "--rm", cid(runtime, 3), "--", "cat",
              "/small") == "s"
    assert "no image named" in fails(runtime, "image", "rm", "sample")


def test_hostile_archive_leaves_nothing(tmp_path: Path, runtime: Runtime) -> None:
    b = LayoutBuilder(tmp_path / "bad")
    img = b.image([busybox_layer(), [F("../../escaped", b"x")]])
    b.tag(img.descriptor, "bad")
    archive = tmp_path / "bad.tar"
    write_archive(b.path, archive)
    line = fails(runtime, "image", "load", f"oci-archive:{archive}:bad")
    assert "escaped" in line or ".." in line
    assert ok(runtime, "image", "ls", "-q") == ""
    assert layer_dirs(runtime) == {}  # not even the (whole, verified) base layer
    assert list((runtime.image_root / "tmp").iterdir()) == []
    assert not (runtime.root / "escaped").exists() and not (tmp_path / "escaped").exists()
    assert "oci:DIR" in fails(runtime, "image", "load", f"docker://{archive}")


def test_run_image_failures_leave_nothing(tmp_path: Path, runtime: Runtime) -> None:
    assert "no image named" in fails(runtime, "run", "--image", "nosuch", cid(runtime))
    assert_no_trace(runtime, cid(runtime))
    ok(runtime, "image", "load", f"oci:{build(tmp_path, runtime).path}:sample")
    # fails after the overlay is mounted and the init is made: exec of a missing program
    fails(runtime, "run", "--image", "sample", "--rm", cid(runtime), "--", "/no/such/program")
    assert_no_trace(runtime, cid(runtime))
    fails(runtime, "run", "--image", "sample", "-d", cid(runtime), "--", "/no/such/program")
    assert_no_trace(runtime, cid(runtime))
    assert "reserved" in fails(runtime, "run", "--image", "sample", "images")
    assert "exclude" in fails(runtime, "run", "--image", "sample", "--rm", "--keep", cid(runtime))
    assert "foreground" in fails(runtime, "run", "--image", "sample", "--rm", "-d", cid(runtime))
    assert "exclude" in fails(runtime, "run", "--image", "sample", "--bundle", "/x", cid(runtime))
    assert "--image" in fails(runtime, "run", cid(runtime), "--", "true")
    assert_no_trace(runtime, cid(runtime))
    assert (runtime.root / "images" / "containers").is_dir()


def test_images_is_not_a_container_id(tmp_path: Path, runtime: Runtime, bundle) -> None:
    b = bundle()
    assert "reserved" in fails(runtime, "create", "--bundle", str(b), "images")
    assert "does not exist" in fails(runtime, "state", "images")


def test_image_bundle_and_unbundle(tmp_path: Path, runtime: Runtime) -> None:
    ok(runtime, "image", "load", f"oci:{build(tmp_path, runtime).path}:sample")
    d = tmp_path / "mybundle"
    assert ok(runtime, "image", "bundle", "sample", str(d), "--", "cat", "/etc/conf") \
        == f"{d}\n"
    assert json.loads((d / "config.json").read_text())["process"]["args"] == \
        ["cat", "/etc/conf"]
    assert mounts_under(d) == []  # without --mount
    assert "already holds a bundle" in fails(runtime, "image", "bundle", "sample", str(d))
    ok(runtime, "image", "unbundle", str(d))
    assert not d.exists()
    ok(runtime, "image", "bundle", "--mount", "sample", str(d), "--", "cat", "/etc/conf")
    assert mounts_under(d)
    assert ok(runtime, "run", "--bundle", str(d), cid(runtime)) == "3" * 200
    ok(runtime, "image", "unbundle", str(d))
    assert not d.exists() and mounts_under(d) == []
    assert "no bundle.json" in fails(runtime, "image", "unbundle", str(tmp_path))


@pytest.mark.parametrize("argv", [["state", "nope"], ["list"], ["run", "--bundle", "/x", "c"]])
def test_hot_verbs_do_not_import_the_image_code(tmp_path: Path, argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pyruntime", "--root", str(tmp_path), *argv],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    imported = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert not {"pyruntime.image", "tarfile", "gzip", "pyruntime.verbs.image"} & imported


def test_killed_run_image_leftovers_are_cleared(tmp_path: Path, runtime: Runtime) -> None:
    """What a `run --image` killed before its state was saved leaves (its bundle dir, empty
    or with the overlay mounted and registered in the store) goes with `delete --force ID`
    or `image unbundle DIR`, and the id is usable again."""
    c1 = f"c1-{runtime.token}"  # cgroups follow the id: other suites may run a cid(runtime)
    ok(runtime, "image", "load", f"oci:{build(tmp_path, runtime).path}:sample")
    # killed right after the mkdir
    bundle_dir(runtime, c1).mkdir(parents=True)
    assert "with id exists" in fails(runtime, "run", "--image", "sample", "--rm", c1,
                                     "--", "true")
    ok(runtime, "delete", "--force", c1)
    assert_no_trace(runtime, c1)
    # killed after the overlay mount: the same state as `image bundle --mount` there
    for how in ("delete", "unbundle"):
        d = bundle_dir(runtime, c1)
        ok(runtime, "image", "bundle", "--mount", "sample", str(d))
        (d / ".bundle.json.tmp").write_text("{")  # a kill inside a write leaves these
        assert mounts_under(d)
        assert ok(runtime, "image", "rm", "sample") == ""
        assert ok(runtime, "image", "prune") == ""  # the mounted layers stay
        if how == "delete":
            ok(runtime, "delete", "--force", c1)
        else:
            ok(runtime, "image", "unbundle", str(d))
        assert_no_trace(runtime, c1)
        assert "does not exist" in fails(runtime, "delete", c1)
        ok(runtime, "image", "load", f"oci:{build(tmp_path, runtime).path}:sample")
    assert ok(runtime, "run", "--image", "sample", "--rm", c1, "--", "cat", "/etc/conf") \
        == "3" * 200


def test_run_image_waits_for_the_store_lock(tmp_path: Path, runtime: Runtime) -> None:
    """`run --image` checks its layers and registers its bundle under the store's lock,
    so a prune (which holds it while it removes layers) cannot pull layers from under it."""
    import fcntl
    import os

    c1 = f"c1-{runtime.token}"
    ok(runtime, "image", "load", f"oci:{build(tmp_path, runtime).path}:sample")
    lock = runtime.image_root / "lock"
    fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    inode = os.fstat(fd).st_ino
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a prune holds it
    try:
        proc = runtime.popen("run", "--image", "sample", "--rm", c1, "--", "cat", "/etc/conf")
        deadline = time.monotonic() + 60
        while not any(line.split()[1] == "->" and line.split()[6].endswith(f":{inode}")
                      for line in open("/proc/locks") if "->" in line):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "run --image never waited for the lock"
            time.sleep(0.02)
        assert not (bundle_dir(runtime, c1) / "bundle.json").exists()
    finally:
        os.close(fd)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == "3" * 200
    assert_no_trace(runtime, c1)


@pytest.mark.parametrize("args", [["true"], ["/bin/busybox", "sleep", "1000"]],
                         ids=["exits", "runs"])
def test_run_image_killed_at_any_instant(tmp_path: Path, runtime: Runtime, args) -> None:
    """SIGKILL a cold `run --image --rm` at a sweep of instants across its whole life
    (reserving the id, making the bundle and its overlay, create, start, the process
    running or exited, the deletion): after each, `delete --force ID` clears everything
    (no process, cgroup, mount, state dir, bundle dir, bundle registration) and the
    store's layers are again free for a prune."""
    import itertools
    import os
    import random
    import signal

    from support.cgroups import find_cgroups
    from support.leftovers import wait_for_no_leftovers

    c1 = cid(runtime)
    tiny = build(tmp_path, runtime, tag="tiny", layers=[busybox_layer()])
    ok(runtime, "image", "load", f"oci:{tiny.path}:tiny")
    argv = [sys.executable, "-m", "pyruntime", "--root", str(runtime.root), "--image-root",
            str(runtime.image_root), "run", "--image", "tiny", "--rm", c1, "--", *args]
    # how long a whole run takes here (to the process running, for "runs"): the sweep
    # spreads over that, and a little past it
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    if args == ["true"]:
        assert proc.wait(timeout=120) == 0
    else:
        while not (runtime.root / c1 / "state.json").exists() or mounts_under(runtime.root) == []:
            assert proc.poll() is None and time.monotonic() - t0 < 120
            time.sleep(0.01)
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    span = time.monotonic() - t0
    ok(runtime, "delete", "--force", c1)
    registrations = runtime.image_root / "bundles"
    # eleven even offsets, then random ones until a kill has caught the overlay mounted
    # (the instant the store's layers are in use by a bundle not yet in any state)
    offsets = [span * i / 9 for i in range(11)]
    caught_mounted = False
    for i in itertools.count():
        if i < len(offsets):
            delay = offsets[i]
        elif caught_mounted or i >= 40:
            break
        else:
            delay = random.uniform(0, span)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        caught_mounted |= proc.returncode == -signal.SIGKILL and bool(mounts_under(runtime.root))
        result = runtime.run("delete", "--force", c1, timeout=60)
        # killed before the id was reserved: there is nothing to delete
        assert result.returncode == 0 or "does not exist" in result.stderr, describe(result)
        left = wait_for_no_leftovers(runtime.workdir, runtime.token, None, runtime.root,
                                     grace=10)
        assert not left, (delay, left.report())
        assert find_cgroups(runtime.token) == [], delay
        assert_no_trace(runtime, c1)
        ok(runtime, "image", "prune")  # drops registrations of bundles that are gone
        assert not registrations.is_dir() or list(registrations.iterdir()) == [], delay
    assert caught_mounted, "no kill landed while the overlay was mounted"
    # nothing holds the layers: forgetting the image lets a prune empty the store
    ok(runtime, "image", "rm", "tiny")
    ok(runtime, "image", "prune")
    assert layer_dirs(runtime) == {}


def test_prune_races_run_image(tmp_path: Path, runtime: Runtime) -> None:
    """`run --image` over and over while another process forgets the image, prunes and
    loads it again: each run either works or finds no image (one line); none fails for
    a layer pruned from under it, and nothing is left."""
    import threading

    tiny = build(tmp_path, runtime, tag="tiny", layers=[busybox_layer([F("x", b"x\n")])])
    ok(runtime, "image", "load", f"oci:{tiny.path}:tiny")
    stop = threading.Event()
    churn_errors: list[str] = []

    def churn() -> None:
        while not stop.is_set():
            for args in (["image", "rm", "tiny"], ["image", "prune"],
                         ["image", "load", f"oci:{tiny.path}:tiny"]):
                result = runtime.run(*args, timeout=120)
                if result.returncode != 0:
                    churn_errors.append(describe(result))

    thread = threading.Thread(target=churn)
    thread.start()
    outcomes = []
    try:
        for n in range(12):
            # the file is read a while after the mount: a prune in between would show
            result = runtime.run("run", "--image", "tiny", "--rm", cid(runtime, n), "--",
                                 "/bin/busybox", "sh", "-c", "sleep 1; cat /x", timeout=120)
            if result.returncode == 0:
                assert result.stdout == "x\n", describe(result)
                outcomes.append("ran")
            else:
                assert result.stderr == "pyruntime: no image named 'tiny' " \
                    "(see `pyruntime image ls`)\n", describe(result)
                outcomes.append("no image")
            assert_no_trace(runtime, cid(runtime, n))
    finally:
        stop.set()
        thread.join()
    assert churn_errors == []
    assert "ran" in outcomes, outcomes


def test_image_bundle_killed_at_any_instant(tmp_path: Path, runtime: Runtime) -> None:
    """SIGKILL `image bundle --mount` at a sweep of instants: what it leaves is either a
    bundle `image unbundle` removes (mount, upper layer, registration, dir), or no mount
    and no bundle file, so that `image bundle` to the same DIR works again."""
    import os
    import signal

    tiny = build(tmp_path, runtime, tag="tiny", layers=[busybox_layer()])
    ok(runtime, "image", "load", f"oci:{tiny.path}:tiny")
    d = tmp_path / "b"
    argv = [sys.executable, "-m", "pyruntime", "--root", str(runtime.root), "--image-root",
            str(runtime.image_root), "image", "bundle", "--mount", "tiny", str(d)]
    t0 = time.monotonic()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True,
                   timeout=120)
    span = time.monotonic() - t0
    ok(runtime, "image", "unbundle", str(d))
    registrations = runtime.image_root / "bundles"
    for i in range(12):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(span * i / 10)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if (d / "bundle.json").exists():
            ok(runtime, "image", "unbundle", str(d))
        else:
            assert mounts_under(d) == [], i
            if d.exists():  # the same DIR takes a bundle again, which then goes
                ok(runtime, "image", "bundle", "--mount", "tiny", str(d))
                ok(runtime, "image", "unbundle", str(d))
        assert not d.exists() and mounts_under(d) == [], i
        ok(runtime, "image", "prune")
        assert not registrations.is_dir() or list(registrations.iterdir()) == [], i


BUNDLE_STEPS = ["bundle:dirs", "bundle:bundle.json", "bundle:config.json", "bundle:registered",
                "bundle:mounted"]


@pytest.mark.parametrize("step", BUNDLE_STEPS)
@pytest.mark.parametrize("verb", ["image-bundle", "run-image"])
def test_killed_while_making_a_bundle(tmp_path: Path, runtime: Runtime, verb: str,
                                      step: str) -> None:
    """The runtime killed (PYRUNTIME_FAULT, pyruntime/errors.py) after each step of making
    an image bundle: `image unbundle DIR` (image bundle) or `delete --force ID` (run
    --image) clears what is left, and the same DIR or ID takes a bundle again."""
    import os

    tiny = build(tmp_path, runtime, tag="tiny", layers=[busybox_layer()])
    ok(runtime, "image", "load", f"oci:{tiny.path}:tiny")
    env = {**os.environ, "PYRUNTIME_FAULT": step}
    if verb == "image-bundle":
        d = tmp_path / "b"
        result = runtime.run("image", "bundle", "--mount", "tiny", str(d), env=env,
                             timeout=120)
        assert result.returncode != 0, describe(result)
        assert d.is_dir()
        if step == "bundle:dirs":  # no file yet: the same DIR takes a bundle
            assert mounts_under(d) == [] and not (d / "config.json").exists()
            ok(runtime, "image", "bundle", "--mount", "tiny", str(d))
        ok(runtime, "image", "unbundle", str(d))
        assert not d.exists() and mounts_under(d) == []
    else:
        c1 = cid(runtime)
        result = runtime.run("run", "--image", "tiny", "--rm", c1, "--", "true", env=env,
                             timeout=120)
        assert result.returncode != 0, describe(result)
        assert bundle_dir(runtime, c1).is_dir()
        ok(runtime, "delete", "--force", c1)
        assert_no_trace(runtime, c1)
        assert ok(runtime, "run", "--image", "tiny", "--rm", c1, "--", "cat", "/etc/passwd")
    ok(runtime, "image", "prune")
    registrations = runtime.image_root / "bundles"
    assert not registrations.is_dir() or list(registrations.iterdir()) == []
    ok(runtime, "image", "rm", "tiny")
    ok(runtime, "image", "prune")
    assert layer_dirs(runtime) == {}

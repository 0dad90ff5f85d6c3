"""Differential tests of the filesystem setup on configs written elsewhere: the same bundle
under runc 1.1.5 (the oracle) and under pyruntime, compared by what the container sees.

- linux.devices anywhere in the rootfs, their parents made inside it;
- a mount destination that is a symlink to a missing path: the target is made inside the
  rootfs (never outside it) and mounted;
- a tmpfs without mode= over an existing directory takes the directory's mode;
- bind sources opened as the runtime sees them (a user-namespaced container's root could
  not reach them);
- a mount namespace joined by path, and no mount namespace at all (then the runtime runs
  inside a private mount namespace made here, so the host's mounts are never touched).

Each test makes one bundle per runtime when the run changes the rootfs (runc would
otherwise find what pyruntime created).  Where pyruntime departs from runc on purpose the
test says why and removes exactly that difference.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from support import Runtime
from support.runc import AGAINST_RUNC, RUNC, normal_mountinfo
from support.runc import open_tmp_path_for_userns as userns

pytestmark = AGAINST_RUNC

# a private mount namespace around the runtime: what it mounts there dies with it
PRIVATE_MNTNS = ["unshare", "--mount", "--propagation", "private"]
ID_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]
_DATE = re.compile(r"\s+[A-Z][a-z]{2}\s+\d+\s+(\d\d:\d\d|\d{4})\s+")


def ours(runtime: Runtime, b, cid: str = "ours", prefix: tuple[str, ...] = (),
         check: bool = True, after: str = "") -> subprocess.CompletedProcess[str]:
    """`run` in the foreground; with `after`, a shell line run after it in the same
    (private) mount namespace, its output appended."""
    return _run([*runtime.cmd("run", "--bundle", b.path, cid)], runtime.workdir, prefix,
                check, after)


def theirs(tmp_path: Path, b, cid: str = "theirs", prefix: tuple[str, ...] = (),
           check: bool = True, after: str = "") -> subprocess.CompletedProcess[str]:
    argv = [RUNC, "--root", str(tmp_path / "runc-root"), "run", "--bundle", str(b.path), cid]
    return _run(argv, tmp_path, prefix, check, after)


def _run(argv: list[str], cwd: Path, prefix: tuple[str, ...], check: bool,
         after: str) -> subprocess.CompletedProcess[str]:
    if after:
        quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in argv)
        argv = ["sh", "-c", f"{quoted}; echo \"## rc $?\"; {after}"]
    r = subprocess.run([*prefix, *argv], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=90, cwd=cwd)
    if check:
        assert r.returncode == 0 and "## rc 0" in (r.stdout if after else "## rc 0"), (
            f"{argv[0]} failed ({r.returncode}): {r.stderr}\n{r.stdout}")
    return r


def undated(text: str) -> list[str]:
    """`ls -l` output without dates and totals."""
    return [_DATE.sub(" ", line) for line in text.splitlines() if not line.startswith("total")]


_TWIN = re.compile(r"(pyrt-test-[0-9a-f]+-|/)(ours|runc)\b")


def mountinfo(lines: list[str] | str) -> list[str]:
    """normal_mountinfo with the twin bundles' names (in paths, cgroups) made one."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    return normal_mountinfo([_TWIN.sub(r"\1TWIN", line) for line in lines])


def twin_bundles(bundle, setup) -> tuple:
    """One bundle per runtime, `setup(bundle)` applied to each, then written."""
    pair = []
    for name in ("ours", "runc"):
        b = bundle(name=name)
        setup(b)
        b.write()
        pair.append(b)
    return tuple(pair)


def test_devices_anywhere_in_rootfs(runtime: Runtime, bundle, tmp_path: Path) -> None:
    outside = tmp_path / "outside"

    def setup(b) -> None:
        rootfs = b.path / "rootfs"
        (rootfs / "lnkdev").symlink_to("/var/devs")  # dangling: its target is made
        (rootfs / "esc").symlink_to("../../../../../../../.." + str(outside))
        b.config["linux"]["devices"] = [
            {"type": "c", "path": "/opt/dev/null2", "major": 1, "minor": 3, "fileMode": 0o600,
             "uid": 1000, "gid": 1001},
            {"type": "p", "path": "/etc/dev2/fifo", "fileMode": 0o640},
            {"type": "c", "path": "/lnkdev/zero", "major": 1, "minor": 5, "fileMode": 0o666},
            {"type": "b", "path": "/esc/blk", "major": 7, "minor": 0, "fileMode": 0o660},
        ]
        b.config["process"]["args"] = ["sh", "-c", (
            f"ls -lnR /opt /etc/dev2 /var/devs {outside} 2>&1")]

    a, b = twin_bundles(bundle, setup)
    mine, runcs = undated(ours(runtime, a).stdout), undated(theirs(tmp_path, b).stdout)
    assert mine == runcs, f"pyruntime: {mine}\nrunc:      {runcs}"
    assert any("1,   3" in line and "null2" in line for line in mine), mine
    assert any("7,   0" in line and "blk" in line for line in mine), mine
    # the escaping symlink was resolved inside the rootfs
    assert not outside.exists()
    assert (a.path / "rootfs" / str(outside).lstrip("/") / "blk").is_block_device()


def test_mount_on_dangling_symlink(runtime: Runtime, bundle, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_text("from the host\n")

    def setup(b) -> None:
        rootfs = b.path / "rootfs"
        (rootfs / "lnk").symlink_to("/made/here")  # absolute
        (rootfs / "etc" / "rel").symlink_to("../gone/x")  # relative
        (rootfs / "esc").symlink_to("../../../../../../../.." + str(outside))  # escaping
        (rootfs / "fl").symlink_to("/files/f")  # a file bind onto it
        (rootfs / "c1").symlink_to("/c2")  # a chain of two
        (rootfs / "c2").symlink_to("final/dir")
        b.config["mounts"] += [
            {"destination": "/lnk", "type": "bind", "source": str(src), "options": ["rbind"]},
            {"destination": "/etc/rel", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/esc", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=1m"]},
            {"destination": "/fl", "type": "bind", "source": str(src / "file"),
             "options": ["bind", "ro"]},
            {"destination": "/c1", "type": "tmpfs", "source": "tmpfs", "options": ["mode=750"]},
        ]
        b.config["process"]["args"] = ["sh", "-c", (
            f"stat -c '%F %a %n' /made/here /gone/x {outside} /files/f /final/dir; cat /fl; "
            "echo '## mountinfo'; cat /proc/self/mountinfo")]

    a, b = twin_bundles(bundle, setup)
    mine, runcs = ours(runtime, a).stdout, theirs(tmp_path, b).stdout
    head_mine, _, mi_mine = mine.partition("## mountinfo\n")
    head_runc, _, mi_runc = runcs.partition("## mountinfo\n")
    assert head_mine == head_runc
    assert head_mine.splitlines() == [
        "directory 755 /made/here", "directory 1777 /gone/x", f"directory 1777 {outside}",
        "regular file 644 /files/f", "directory 750 /final/dir", "from the host"]
    assert mountinfo(mi_mine) == mountinfo(mi_runc)
    assert not outside.exists()


def test_tmpfs_takes_mode_of_covered_directory(runtime: Runtime, bundle,
                                               tmp_path: Path) -> None:
    def setup(b) -> None:
        rootfs = b.path / "rootfs"
        for name, mode in (("data", 0o710), ("sticky", 0o1750), ("sgid", 0o2770),
                           ("explicit", 0o751)):
            (rootfs / name).mkdir()
            os.chmod(rootfs / name, mode)
        b.config["mounts"] += [
            {"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
            {"destination": "/sticky", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/sgid", "type": "tmpfs", "source": "tmpfs", "options": ["nodev"]},
            {"destination": "/fresh", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/explicit", "type": "tmpfs", "source": "tmpfs",
             "options": ["mode=700"]},
        ]
        b.config["process"]["args"] = ["sh", "-c",
                                       "stat -c '%a %n' /data /sticky /sgid /fresh /explicit"]

    a, b = twin_bundles(bundle, setup)
    mine = ours(runtime, a).stdout.splitlines()
    runcs = theirs(tmp_path, b).stdout.splitlines()
    assert mine == ["710 /data", "1750 /sticky", "2770 /sgid", "1777 /fresh", "700 /explicit"]
    # departure: runc 1.1.5 chmods every tmpfs over an existing directory to that
    # directory's mode, even one whose options say mode=; the config's mode wins here
    assert runcs == [*mine[:4], "751 /explicit"]


def test_bind_sources_only_host_root_reaches(runtime: Runtime, bundle, tmp_path: Path) -> None:
    userns(tmp_path)
    secret = tmp_path / "secret"  # 0700, owned by host root: the container's root is not
    (secret / "sub").mkdir(parents=True)
    secret.chmod(0o700)
    (secret / "sub" / "f").write_text("below a 0700 directory\n")
    (secret / "top").write_text("in a 0700 directory\n")

    def setup(b) -> None:
        b.config["linux"]["namespaces"].append({"type": "user"})
        b.config["linux"]["uidMappings"] = ID_MAP
        b.config["linux"]["gidMappings"] = ID_MAP
        b.config["mounts"] = [m for m in b.config["mounts"]
                              if m["destination"] != "/sys/fs/cgroup"]
        for d in ("s", "s2"):  # the mapped root may not create them in the rootfs
            (b.path / "rootfs" / d).mkdir()
        (b.path / "rootfs" / "s3").touch()
        b.config["mounts"] += [
            {"destination": "/s", "type": "bind", "source": str(secret), "options": ["rbind"]},
            {"destination": "/s2", "type": "bind", "source": str(secret / "sub"),
             "options": ["bind", "ro"]},
            {"destination": "/s3", "type": "bind", "source": str(secret / "top"),
             "options": ["bind", "ro", "nosuid"]},
        ]
        b.config["process"]["args"] = ["sh", "-c", (
            "cat /s2/f; ls -ln /s 2>&1; ls -ldn /s /s2; cat /s3 2>&1; "
            "grep -E ' /s[23]? ' /proc/self/mountinfo")]

    a, b = twin_bundles(bundle, setup)
    mine, runcs = ours(runtime, a).stdout, theirs(tmp_path, b).stdout
    assert "below a 0700 directory" in mine
    mine_lines, runc_lines = mine.splitlines(), runcs.splitlines()
    cut = next((i for i, line in enumerate(mine_lines) if " /s " in line), None)
    assert cut is not None, f"pyruntime: {mine}\nrunc: {runcs}"
    assert undated("\n".join(mine_lines[:cut])) == undated("\n".join(runc_lines[:cut]))
    assert mountinfo(mine_lines[cut:]) == mountinfo(runc_lines[cut:])
    assert len(mine_lines[cut:]) == 3


def test_bind_sources_in_a_joined_user_namespace(runtime: Runtime, bundle,
                                                tmp_path: Path) -> None:
    """The same, the user namespace joined by path (another container's): the runtime still
    opens the sources as host root (runc's stage-0 does; here a helper forked before the
    joins)."""
    userns(tmp_path)
    secret = tmp_path / "secret"
    (secret / "sub").mkdir(parents=True)
    secret.chmod(0o700)
    (secret / "sub" / "f").write_text("below a 0700 directory\n")
    owner = bundle(name="owner")
    owner.config["process"]["args"] = ["sleep", "1000"]
    owner.config["linux"]["namespaces"].append({"type": "user"})
    owner.config["linux"]["uidMappings"] = ID_MAP
    owner.config["linux"]["gidMappings"] = ID_MAP
    owner.config["mounts"] = [m for m in owner.config["mounts"]
                              if m["destination"] != "/sys/fs/cgroup"]
    owner.write()
    runtime.create(owner, "owner")
    user_ns = f"/proc/{runtime.state('owner')['pid']}/ns/user"

    def setup(b) -> None:
        b.config["linux"]["namespaces"].append({"type": "user", "path": user_ns})
        # the joined namespace's own mappings: runc 1.1.5 wants them even when joining
        b.config["linux"]["uidMappings"] = ID_MAP
        b.config["linux"]["gidMappings"] = ID_MAP
        b.config["mounts"] = [m for m in b.config["mounts"]
                              if m["destination"] != "/sys/fs/cgroup"]
        (b.path / "rootfs" / "s2").mkdir()
        b.config["mounts"].append({"destination": "/s2", "type": "bind",
                                   "source": str(secret / "sub"), "options": ["bind", "ro"]})
        b.config["process"]["args"] = ["sh", "-c", (
            "cat /s2/f; cat /proc/self/uid_map; grep -E ' /s2 ' /proc/self/mountinfo")]

    a, b = twin_bundles(bundle, setup)
    mine, runcs = ours(runtime, a).stdout, theirs(tmp_path, b).stdout
    lines = mine.splitlines()
    assert lines[0] == "below a 0700 directory" and lines[1].split() == ["0", "100000", "65536"]
    assert mine.splitlines()[:2] == runcs.splitlines()[:2]
    assert mountinfo(mine.splitlines()[2:]) == mountinfo(runcs.splitlines()[2:])
    assert len(mine.splitlines()) == 3
    runtime.delete("owner", force=True)


def _holder() -> subprocess.Popen[bytes]:
    """A process in a private mount namespace of its own, to be joined by path."""
    here = os.readlink("/proc/self/ns/mnt")
    p = subprocess.Popen([*PRIVATE_MNTNS, "sleep", "600"], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while os.readlink(f"/proc/{p.pid}/ns/mnt") == here:
        assert time.monotonic() < deadline and p.poll() is None, "unshare did not start"
        time.sleep(0.02)
    return p


def test_join_mount_namespace_by_path(runtime: Runtime, bundle, tmp_path: Path) -> None:
    holders = [_holder(), _holder()]
    try:
        def setup_for(holder):
            def setup(b) -> None:
                b.config["linux"]["namespaces"] = [
                    n for n in b.config["linux"]["namespaces"] if n["type"] != "mount"
                ] + [{"type": "mount", "path": f"/proc/{holder.pid}/ns/mnt"}]
                b.config["process"]["args"] = ["sh", "-c", (
                    "readlink /proc/self/ns/mnt; echo '## mountinfo'; cat /proc/self/mountinfo")]
            return setup

        a = bundle(name="ours")
        setup_for(holders[0])(a)
        a.write()
        b = bundle(name="runc")
        setup_for(holders[1])(b)
        b.write()
        mine = ours(runtime, a, prefix=tuple(PRIVATE_MNTNS)).stdout
        runcs = theirs(tmp_path, b, prefix=tuple(PRIVATE_MNTNS)).stdout
        ns_mine, _, mi_mine = mine.partition("\n## mountinfo\n")
        ns_runc, _, mi_runc = runcs.partition("\n## mountinfo\n")
        assert ns_mine == os.readlink(f"/proc/{holders[0].pid}/ns/mnt")
        assert ns_runc == os.readlink(f"/proc/{holders[1].pid}/ns/mnt")
        assert mountinfo(mi_mine) == mountinfo(mi_runc)
        # the rootfs was set up in the joined namespace, and pivot_root there moved the
        # root of the processes in it (the holder) to the container's, with runc too
        seen = [sorted(os.listdir(f"/proc/{h.pid}/root")) for h in holders]
        assert seen[0] == seen[1] and "bin" in seen[0]
    finally:
        for h in holders:
            h.kill()
            h.wait()


def _without_mount_namespace(b) -> None:
    linux = b.config["linux"]
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "mount"]
    linux.pop("maskedPaths")
    linux.pop("readonlyPaths")


# what the runtime's own mount namespace holds of the bundle once the runtime is done
LEFT = "echo '## left'; grep \" $PWD/\" /proc/self/mountinfo || true"


def _left(out: str, bundle_path: Path) -> list[str]:
    lines = out.partition("## left\n")[2].splitlines()
    return mountinfo([line.replace(str(bundle_path), "BUNDLE") for line in lines])


def test_no_mount_namespace(runtime: Runtime, bundle, tmp_path: Path) -> None:
    def setup(b) -> None:
        _without_mount_namespace(b)
        b.config["process"]["args"] = ["sh", "-c", "ls /; echo '## mountinfo'; "
                                       "cat /proc/self/mountinfo"]

    a, b = twin_bundles(bundle, setup)
    mine = ours(runtime, a, prefix=tuple(PRIVATE_MNTNS), after=f"cd {a.path}; {LEFT}").stdout
    runcs = theirs(tmp_path, b, prefix=tuple(PRIVATE_MNTNS), after=f"cd {b.path}; {LEFT}").stdout
    ls_mine, _, rest_mine = mine.partition("## mountinfo\n")
    ls_runc, _, rest_runc = runcs.partition("## mountinfo\n")
    assert ls_mine == ls_runc and "bin" in ls_mine.split()
    mi_mine = rest_mine.partition("## rc")[0].splitlines()
    mi_runc = rest_runc.partition("## rc")[0].splitlines()
    # chroot, not pivot_root: the rootfs bind is the container's /, and only the mounts
    # below it are visible to the container
    assert mountinfo(mi_mine) == mountinfo(mi_runc)
    assert normal_mountinfo(mi_mine)[0].startswith(f"{a.path}/rootfs / ")
    # the container's mounts stay in the runtime's mount namespace after it exits, as
    # with runc: README says so
    left = _left(mine, a.path)
    assert left == _left(runcs, b.path)
    assert left[0].startswith("BUNDLE/rootfs BUNDLE/rootfs ") and len(left) > 5


def _fail_without_mount_namespace(runtime: Runtime, bundle, tmp_path: Path, edit):
    """`run` a bundle without a mount namespace, edited by `edit` to fail, under both
    runtimes in a private mount namespace: (pyruntime's result, the mounts it left there,
    runc's result, the mounts runc left)."""
    def setup(b) -> None:
        _without_mount_namespace(b)
        edit(b.config)

    a, b = twin_bundles(bundle, setup)
    mine = ours(runtime, a, prefix=tuple(PRIVATE_MNTNS), check=False,
                after=f"cd {a.path}; {LEFT}")
    runcs = theirs(tmp_path, b, prefix=tuple(PRIVATE_MNTNS), check=False,
                   after=f"cd {b.path}; {LEFT}")
    assert "## rc 0" not in mine.stdout and "## rc 0" not in runcs.stdout
    return mine, _left(mine.stdout, a.path), runcs, _left(runcs.stdout, b.path)


# `run` destroys the container (SIGKILL) as soon as it reads the error: the init detaches
# its mounts before it reports (native/init.c), so no kill can come between.
def test_no_mount_namespace_failure_leaves_no_mounts(runtime: Runtime, bundle,
                                                     tmp_path: Path) -> None:
    def edit(config: dict) -> None:
        config["process"]["args"] = ["/no/such/program"]

    mine, mine_left, _, runc_left = _fail_without_mount_namespace(runtime, bundle, tmp_path,
                                                                   edit)
    assert "/no/such/program" in mine.stderr
    # departure: runc 1.1.5 leaves the failed container's mounts in the runtime's mount
    # namespace; pyruntime's init detaches them before it exits (a failed verb leaves
    # nothing)
    assert mine_left == []
    assert runc_left != []


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_no_mount_namespace_failed_hook_leaves_no_mounts(runtime: Runtime, bundle,
                                                         tmp_path: Path, kind: str) -> None:
    """A create-time hook fails while the init waits for it with its mounts made in the
    runtime's own mount namespace: the init detaches them before it goes."""
    def edit(config: dict) -> None:
        config["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]}

    mine, mine_left, _, runc_left = _fail_without_mount_namespace(runtime, bundle, tmp_path,
                                                                   edit)
    assert kind in mine.stderr, mine.stderr
    # departure, as above: runc 1.1.5 leaves them
    assert mine_left == []
    assert runc_left != []


@pytest.mark.parametrize("field", ["maskedPaths", "readonlyPaths", "rootfsPropagation"])
def test_no_mount_namespace_refuses_host_changes(runtime: Runtime, bundle, tmp_path: Path,
                                                 field: str) -> None:
    b = bundle()
    _without_mount_namespace(b)
    b.config["linux"][field] = "rslave" if field == "rootfsPropagation" else ["/proc/kcore"]
    b.write()
    mine = ours(runtime, b, prefix=tuple(PRIVATE_MNTNS), check=False)
    assert mine.returncode == 1
    assert mine.stderr.strip().splitlines() == [
        f"pyruntime: config.json: linux.{field}: needs a mount namespace (linux.namespaces "
        "has none, so the container would share the runtime's mounts)"]
    runcs = theirs(tmp_path, b, prefix=tuple(PRIVATE_MNTNS), check=False)
    # runc refuses masked and read-only paths too; it applies rootfsPropagation to the
    # runtime's own / (departure: pyruntime never changes the propagation of /)
    assert (runcs.returncode != 0) == (field != "rootfsPropagation"), runcs.stderr

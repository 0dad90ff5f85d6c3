"""A user without privileges runs containers (README, Rootless).

The module creates that user (useradd) and removes it afterwards; every pyruntime call
runs as it (setpriv), with $XDG_RUNTIME_DIR in a directory it owns, so the state lives in
$XDG_RUNTIME_DIR/pyruntime.  Under `make test-served` the user's calls go through a
`pyruntime serve` of its own.  The checkout must be usable by other users (readable,
searchable, and the venv built from /usr/bin/python3 by `make setup`).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyruntime.api.leftovers import _is_zombie_or_gone
from pyruntime.api.rootfs import build_busybox_rootfs
from support.leftovers import TOKEN_VAR
from support.runc import RUNC, normal_dev, normal_mountinfo, sections
from support.runtime import served_suite

pytestmark = pytest.mark.root  # useradd, setpriv

REPO = Path(__file__).resolve().parent.parent
CLIENT = Path(sys.executable).parent / "pyruntime"
TIMEOUT = 60


class User:
    def __init__(self, name: str) -> None:
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, pw.pw_uid, pw.pw_gid


def _not_for_others(path: Path) -> str | None:
    """The first directory from / to `path` that other users cannot search, if any."""
    for p in [*reversed(path.parents), path]:
        if not p.stat().st_mode & stat.S_IXOTH:
            return str(p)
    return None


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    name = f"pyrt-rl-{os.getpid()}"
    subprocess.run(["useradd", "--no-create-home", "--user-group", "--shell",
                    "/usr/sbin/nologin", name], check=True, capture_output=True)
    try:
        u = User(name)
        blocked = _not_for_others(CLIENT.resolve().parent) or _not_for_others(
            Path(os.path.realpath(sys.executable)))
        check = subprocess.run(_as(u, sys.executable, "-c", "import pyruntime._native"),
                               capture_output=True, text=True, timeout=TIMEOUT, cwd="/")
        if blocked or check.returncode:
            pytest.fail(f"user {name} cannot use this checkout ({REPO}): "
                        f"{f'{blocked} is not searchable by other users; ' if blocked else ''}"
                        f"{check.stderr.strip()[-300:]} -- every directory down to it must "
                        "be o+rx, and the venv built from /usr/bin/python3 (`make setup`)")
        yield u
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def _as(u: User, *argv: str) -> list[str]:
    return ["setpriv", f"--reuid={u.uid}", f"--regid={u.gid}", "--init-groups", *argv]


class Home:
    """The user's directory for one test: a bundle it owns and its XDG_RUNTIME_DIR."""

    def __init__(self, u: User, token: str) -> None:
        self.user = u
        self.token = token
        self.dir = Path(tempfile.mkdtemp(prefix="pyrt-rootless-"))  # pytest's tmp is 0700
        self.xdg = self.dir / "xdg"
        self.xdg.mkdir(mode=0o700)
        self.bundle = self.dir / "bundle"
        build_busybox_rootfs(self.bundle / "rootfs")
        subprocess.run(["chown", "-R", f"{u.uid}:{u.gid}", str(self.dir)], check=True)
        self.server: subprocess.Popen | None = None

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.dir),
                "XDG_RUNTIME_DIR": str(self.xdg), **extra}

    def run(self, *args: str, env: dict[str, str] | None = None, check: bool = True,
            cgroup: str | None = None) -> subprocess.CompletedProcess:
        """pyruntime ARGS as the user; `cgroup`: from inside that cgroup2 directory (root
        moves the process there before it becomes the user, as a login manager does)."""
        return self.run_argv([str(CLIENT), *args], env=env, check=check, cgroup=cgroup)

    def run_argv(self, command: list[str], env: dict[str, str] | None = None,
                 check: bool = True, cgroup: str | None = None) -> subprocess.CompletedProcess:
        argv = _as(self.user, *command)
        if cgroup is not None:
            argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, *argv]
        # files, not pipes: a created container's init keeps them open
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            rc = subprocess.run(argv, cwd=self.bundle,
                                env=self.env() if env is None else env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                timeout=TIMEOUT).returncode
            out.seek(0)
            err.seek(0)
            r = subprocess.CompletedProcess(command, rc, out.read(), err.read())
        if check and r.returncode:
            raise AssertionError(f"{' '.join(command)}: exit {r.returncode}: {r.stderr}")
        return r

    def spec(self, args: list[str], **linux: object) -> dict:
        """`pyruntime spec --rootless` as the user, then the test's args and edits."""
        (self.bundle / "config.json").unlink(missing_ok=True)
        self.run("spec", "--rootless")
        config = json.loads((self.bundle / "config.json").read_text())
        config["process"].update(args=args, terminal=False)
        config["process"]["env"].append(f"{TOKEN_VAR}={self.token}")
        config["linux"].update(linux)
        self.write(config)
        return config

    def write(self, config: dict) -> None:
        path = self.bundle / "config.json"
        path.write_text(json.dumps(config))
        os.chown(path, self.user.uid, self.user.gid)

    def serve(self) -> None:
        """The user's own `pyruntime serve`, at $XDG_RUNTIME_DIR/pyruntime/serve.sock."""
        self.server = subprocess.Popen(_as(self.user, str(CLIENT), "serve"), cwd=self.dir,
                                       env=self.env(), stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
        line = self.server.stdout.readline()
        assert line.startswith("ready"), self.server.stderr.read()

    def state_root(self) -> list[str]:
        root = self.xdg / "pyruntime"
        return sorted(n for n in os.listdir(root) if not n.startswith("serve")) \
            if root.exists() else []

    def close(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=TIMEOUT)
            self.server.stdout.close()
            self.server.stderr.close()
        for cid in self.state_root():
            self.run("delete", "--force", cid, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def home(user: User, test_token: str) -> Iterator[Home]:
    h = Home(user, test_token)
    try:
        if served_suite():
            h.serve()
        yield h
    finally:
        h.close()


def _wait_status(h: Home, cid: str, want: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while json.loads(h.run("state", cid).stdout)["status"] != want:
        assert time.monotonic() < deadline, f"{cid} never became {want}"
        time.sleep(0.05)


def test_run_as_user_is_root_in_its_user_namespace(home: Home) -> None:
    home.spec(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/setgroups; "
               "ls /sys/class >/dev/null && echo sysfs; echo x > /dev/null && echo null"])
    r = home.run("run", "c1")
    lines = r.stdout.split("\n")
    assert lines[:2] == ["0", "0"], r.stdout
    assert lines[2].split() == ["0", str(home.user.uid), "1"]
    assert lines[3:6] == ["deny", "sysfs", "null"]
    # its own state root (0700 and sticky, as runc makes it: the XDG spec lets a session
    # manager prune $XDG_RUNTIME_DIR of what lacks the sticky bit), and nothing left in it
    st = (home.xdg / "pyruntime").stat()
    assert (st.st_uid, oct(stat.S_IMODE(st.st_mode))) == (home.user.uid, oct(0o1700))
    assert home.state_root() == []
    assert not json.loads(home.run("list", "--format", "json").stdout)


@pytest.mark.skipif(RUNC is None, reason="runc (the oracle) is not installed")
def test_mounts_and_devices_as_runc_rootless(home: Home) -> None:
    """The same user, bundle and `spec --rootless` config with a device of its own, run by
    pyruntime and by runc 1.1.5: the same mounts (devices bound from the host, /sys a
    read-only rbind, a fresh mqueue, the cgroup mount), the same /dev, the same caps."""
    report = ("echo '## mountinfo'; cat /proc/self/mountinfo; echo '## dev'; "
              "ls -ln /dev /dev/mqueue /dev/net; echo '## caps'; grep Cap /proc/self/status")
    home.spec(["sh", "-c", report], devices=[
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666},
        {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200}])
    ours = sections(home.run("run", "c15").stdout)
    theirs = sections(home.run_argv([RUNC, "run", "c15"]).stdout)
    assert normal_mountinfo(ours["mountinfo"]) == normal_mountinfo(theirs["mountinfo"])
    assert any(" /fuse /dev/fuse " in line for line in ours["mountinfo"]), ours["mountinfo"]
    assert normal_dev(ours["dev"]) == normal_dev(theirs["dev"])
    assert any(line.split()[-1] == "fuse" for line in ours["dev"]), ours["dev"]
    assert ours["caps"] == theirs["caps"] and len(ours["caps"]) == 5
    assert home.state_root() == []


def test_lifecycle_and_exec(home: Home) -> None:
    home.spec(["sleep", "1000"])
    home.run("create", "c2")
    _wait_status(home, "c2", "created")
    home.run("start", "c2")
    _wait_status(home, "c2", "running")
    state = json.loads(home.run("state", "c2").stdout)
    assert os.stat(f"/proc/{state['pid']}").st_uid == home.user.uid  # uid 0 inside
    # listed as the user's (runc: the owner of the state directory), not root's
    assert [(c["id"], c["owner"]) for c in
            json.loads(home.run("list", "--format", "json").stdout)] == [("c2", home.user.name)]
    table = home.run("list").stdout.splitlines()
    assert table[1].split()[0::5] == ["c2", home.user.name], table
    r = home.run("exec", "c2", "sh", "-c", "id -u; cat /proc/1/cmdline")
    assert r.stdout == "0\nsleep\x001000\x00", r.stdout
    # a user outside the container's map is named (runc refuses it too), not EINVAL
    r = home.run("exec", "--user", "0:1000", "c2", "true", check=False)
    assert (r.returncode, r.stderr) == (1, "pyruntime: exec: process.user.gid: 1000 is not "
                                        "mapped in the container's user namespace "
                                        "(linux.gidMappings)\n")
    # and with a terminal: a pty of the container's devpts, relayed by `exec`
    r = home.run("exec", "-t", "c2", "sh", "-c", "tty; id -u")
    assert r.stdout.replace("\r\n", "\n") == "/dev/pts/0\n0\n", r.stdout
    home.run("kill", "c2", "KILL")
    _wait_status(home, "c2", "stopped")
    home.run("delete", "c2")
    assert home.state_root() == []
    assert _is_zombie_or_gone(state["pid"])  # a zombie until its reaper (pytest) waits


def test_a_terminal(home: Home) -> None:
    """process.terminal in the foreground: the container gets a pty of its own devpts
    (mounted in its user namespace) and `run` relays it."""
    config = home.spec(["sh", "-c", "tty; id -u; stat -c '%u %t' /dev/console"])
    config["process"]["terminal"] = True
    home.write(config)
    out = home.run("run", "c11").stdout.replace("\r\n", "\n")
    assert out == "/dev/pts/0\n0\n0 88\n", out  # 0x88 = 136, the pty major


def test_bind_mount_of_the_users_own_file(home: Home) -> None:
    own = home.dir / "note.txt"
    own.write_text("mine\n")
    os.chown(own, home.user.uid, home.user.gid)
    config = home.spec(["cat", "/mnt/note.txt"])
    config["mounts"].append({"destination": "/mnt/note.txt", "type": "bind",
                             "source": str(own), "options": ["bind", "ro"]})
    home.write(config)
    assert home.run("run", "c3").stdout == "mine\n"


def test_without_a_user_namespace_needs_root(home: Home) -> None:
    config = home.spec(["true"])
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                     if n["type"] != "user"]
    for key in ("uidMappings", "gidMappings"):
        del config["linux"][key]
    home.write(config)
    r = home.run("run", "c4", check=False)
    assert r.returncode == 1
    assert "needs root or a user namespace" in r.stderr
    assert home.state_root() == []


def test_ranges_from_etc_subuid_through_newuidmap(home: Home) -> None:
    """/etc/subuid and /etc/subgid grant the user a range (usermod here; userdel removes
    it): newuidmap/newgidmap write the maps, and a process.user in the range works."""
    u, start = home.user, 1_500_000_000 + os.getpid() % 1000 * 65536
    subprocess.run(["usermod", "--add-subuids", f"{start}-{start + 65535}", "--add-subgids",
                    f"{start}-{start + 65535}", u.name], check=True, capture_output=True)
    try:
        maps = [{"containerID": 0, "hostID": u.uid, "size": 1},
                {"containerID": 1, "hostID": start, "size": 65536}]
        gmaps = [{**maps[0], "hostID": u.gid}, maps[1]]
        config = home.spec(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map; "
                            "cat /proc/self/setgroups; touch /dev/shm/f; stat -c %u /dev/shm/f"],
                           uidMappings=maps, gidMappings=gmaps)
        config["process"]["user"] = {"uid": 5, "gid": 7}
        home.write(config)
        lines = home.run("run", "c9").stdout.split("\n")
        assert lines[:2] == ["5", "7"]
        assert [line.split() for line in lines[2:4]] == [["0", str(u.uid), "1"],
                                                         ["1", str(start), "65536"]]
        assert lines[4:6] == ["allow", "5"]
        home.spec(["true"], uidMappings=[maps[0], {**maps[1], "hostID": start - 65536}],
                  gidMappings=gmaps)
        r = home.run("run", "c10", check=False)
        assert r.returncode == 1
        assert "linux.uidMappings: host uids" in r.stderr and "/etc/subuid" in r.stderr
        assert home.state_root() == []
    finally:
        subprocess.run(["usermod", "--del-subuids", f"{start}-{start + 65535}",
                        "--del-subgids", f"{start}-{start + 65535}", u.name],
                       capture_output=True)


def test_mapping_another_uid_is_refused(home: Home) -> None:
    home.spec(["true"], uidMappings=[{"containerID": 0, "hostID": 0, "size": 1}])
    r = home.run("run", "c5", check=False)
    assert r.returncode == 1
    assert "linux.uidMappings: host uids 0-0 are neither the user's own uid" in r.stderr, \
        r.stderr
    assert home.state_root() == []


def test_unmapped_ids_are_named(home: Home) -> None:
    """A process user or a mount's gid= that the user's map does not cover fails naming
    the field, before anything is made (runc refuses both too), not with EINVAL."""
    config = home.spec(["true"])
    config["process"]["user"] = {"uid": 1000, "gid": 0}
    home.write(config)
    r = home.run("run", "c16", check=False)
    assert (r.returncode, r.stderr) == (1, "pyruntime: config.json: process.user.uid: 1000 "
                                        "is not mapped in the container's user namespace "
                                        "(linux.uidMappings)\n")
    config = home.spec(["true"])
    for m in config["mounts"]:
        if m["destination"] == "/dev/pts":
            m["options"].append("gid=5")  # root's `pyruntime spec` has it
    home.write(config)
    r = home.run("run", "c16", check=False)
    assert r.returncode == 1
    assert "config.json: mounts: /dev/pts: option gid=5: gid 5 is not mapped" in r.stderr, \
        r.stderr
    assert home.state_root() == []


def test_mqueue_and_sysfs_need_namespaces_of_their_own(home: Home) -> None:
    """Mounting mqueue or sysfs needs the container's own IPC or network namespace when not
    root: without it the failure names the namespace (runc 1.1.5 fails too, with EPERM
    from mount); with it, the mount is the kernel's."""
    config = home.spec(["true"])
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                     if n["type"] != "ipc"]
    home.write(config)
    r = home.run("run", "c17", check=False)
    assert (r.returncode, r.stderr) == (1, "pyruntime: config.json: mounts: /dev/mqueue: "
                                        "mounting mqueue needs the container's own ipc "
                                        'namespace when not root (add {"type": "ipc"} to '
                                        "linux.namespaces), or a bind of the host's "
                                        "/dev/mqueue\n")
    config = home.spec(["sh", "-c", "grep -w sysfs /proc/self/mountinfo"])
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/sys"] + [
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]}]
    home.write(config)
    r = home.run("run", "c17", check=False)
    assert r.returncode == 1
    assert "config.json: mounts: /sys: mounting sysfs needs the container's own network " \
        "namespace when not root" in r.stderr, r.stderr
    config["linux"]["namespaces"].append({"type": "network"})
    home.write(config)
    assert home.run("run", "c17").stdout.split()[3:5] == ["/", "/sys"]
    assert home.state_root() == []


def test_cgroups_without_delegation_name_the_cause(home: Home) -> None:
    """This host has no cgroup subtree delegated to the user: a cgroupsPath it asks for,
    a limit, or --rootless false (cgroups required), fails naming the directory;
    --rootless auto without a path runs without cgroups (the other tests)."""
    home.spec(["true"], cgroupsPath=f"pyrt-rootless-{home.token}")
    r = home.run("run", "c6", check=False)
    assert r.returncode == 1
    assert "cannot write cgroup /sys/fs/cgroup/" in r.stderr, r.stderr
    assert "permission denied (no delegation)" in r.stderr, r.stderr
    home.spec(["true"], resources={"pids": {"limit": 10}})
    r = home.run("run", "c6", check=False)
    assert r.returncode == 1
    assert "cannot set pids.max: cannot write cgroup /sys/fs/cgroup/" in r.stderr, r.stderr
    assert "(no delegation)" in r.stderr, r.stderr
    home.spec(["true"], resources={"devices": [{"allow": False, "access": "rwm"}]})
    home.run("run", "c6")  # as runc: device rules are not expected to work rootless
    home.spec(["true"])
    for false in ("false", "0", "F"):  # runc reads it with Go's ParseBool
        r = home.run("--rootless", false, "run", "c7", check=False)
        assert r.returncode == 1
        assert "permission denied (no delegation)" in r.stderr, r.stderr
    for true in ("true", "1", "TRUE", "Auto"):
        home.run("--rootless", true, "run", "c7")
    r = home.run("--rootless", "maybe", "run", "c7", check=False)
    assert (r.returncode, r.stderr) == (1, "pyruntime: --rootless 'maybe': expected true, "
                                        "false or auto\n")
    assert home.state_root() == []


def test_without_xdg_runtime_dir_the_root_is_named(home: Home) -> None:
    """As runc ("mkdir /run/runc: permission denied" for every verb but spec): each verb
    that uses the state root fails naming the cause, none says "does not exist" or
    lists nothing."""
    home.spec(["true"])
    env = home.env()
    del env["XDG_RUNTIME_DIR"]
    for args in (["run", "c8"], ["create", "c8"], ["state", "c8"], ["kill", "c8"],
                 ["delete", "c8"], ["exec", "c8", "true"], ["list"], ["ps", "c8"],
                 ["serve"]):
        r = home.run(*args, env=env, check=False)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert r.stderr.splitlines() == [
            "pyruntime: --root /run/pyruntime: Permission denied; a non-root user's state "
            "lives in $XDG_RUNTIME_DIR/pyruntime, and XDG_RUNTIME_DIR is not set: set it or "
            "pass --root"], (args, r.stderr)
        assert r.stdout == "", (args, r.stdout)
    (home.bundle / "config.json").unlink()
    home.run("spec", "--rootless", env=env)  # needs no state root
    assert (home.bundle / "config.json").is_file()
    home.spec(["true"])
    root = home.dir / "own-root"
    home.run("--root", str(root), "run", "c8", env=env)  # an explicit --root is used
    assert os.listdir(root) == []


def test_a_delegated_cgroup2_subtree_is_used(home: Home) -> None:
    """A cgroup2 directory the user owns and runs in (delegated by root: chown of it and of
    its cgroup.procs, cgroup.threads, cgroup.subtree_control) gets the container's cgroup,
    as runc's rootless manager uses one; delete removes it.  The hierarchies the user does
    not own (this hybrid host's v1 controllers) are left out."""
    from pyruntime.cgroups.detect import UNIFIED, host

    v2 = host().v2
    if v2 is None:
        pytest.skip("this host mounts no cgroup2 hierarchy")
    delegated = v2.dir_of(os.path.join(v2.own, f"pyrt-rootless-{home.token}"))
    os.mkdir(delegated)
    try:
        for name in ("", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control"):
            os.chown(os.path.join(delegated, name), home.user.uid, home.user.gid)
        home.spec(["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"])
        home.run("create", "c14", cgroup=delegated)
        pid = json.loads(home.run("state", "c14").stdout)["pid"]
        inner = os.path.join(delegated, "c14")
        with open(f"/proc/{pid}/cgroup") as f:
            assert f"0::{os.path.join(v2.own, os.path.basename(delegated), 'c14')}" \
                in f.read().split("\n")
        assert os.stat(inner).st_uid == home.user.uid
        with open(os.path.join(inner, "cgroup.procs")) as f:
            assert f.read().split() == [str(pid)]
        home.run("start", "c14")
        deadline = time.monotonic() + TIMEOUT
        while len(json.loads(home.run("ps", "--format", "json", "c14").stdout)) < 2:
            assert time.monotonic() < deadline, "ps never listed sh and sleep"
            time.sleep(0.05)
        if host().mode != UNIFIED:  # hybrid: the v1 freezer was left out
            r = home.run("pause", "c14", check=False)
            assert (r.returncode, r.stderr) == (1, "pyruntime: cgroup: the container has no "
                                                "freezer cgroup: its user could not create "
                                                "one (no delegation)\n")
        home.run("kill", "--all", "c14", "TERM")  # unfrozen without a freezer, as runc
        _wait_status(home, "c14", "stopped")
        home.run("delete", "c14", cgroup=delegated)
        assert not os.path.exists(inner)
        assert home.state_root() == []
    finally:
        home.run("delete", "--force", "c14", check=False)  # after a failure: its cgroup too
        os.rmdir(delegated)  # emptied by then: the user's calls have all exited


def _init_exe(h: Home, cid: str) -> str:
    """What forked the created container's init (it has not exec'd yet): the C client when
    served, the Python CLI when cold."""
    pid = json.loads(h.run("state", cid).stdout)["pid"]
    return os.path.realpath(f"/proc/{pid}/exe")


def test_served_only_by_the_users_own_server(home: Home) -> None:
    """The user's calls go to a `pyruntime serve` of its own (at its default root); a
    server of another user (root's here, its socket open to all) is not trusted: cold."""
    from support.served import SOCKET_ENV, Server

    if home.server is None:
        home.serve()
    home.spec(["true"])
    home.run("create", "c12")
    assert _init_exe(home, "c12") == str(CLIENT.resolve())
    home.run("delete", "--force", "c12")
    root_server = Server(Path(tempfile.mkdtemp(prefix="pyrt-rootless-srv-")))
    try:
        root_server.socket.chmod(0o777)
        root_server.socket.parent.chmod(0o755)
        env = {**home.env(), SOCKET_ENV: str(root_server.socket)}
        home.run("create", "c13", env=env)
        assert _init_exe(home, "c13") == os.path.realpath(sys.executable)
        home.run("delete", "--force", "c13", env=env)
        assert home.state_root() == []
    finally:
        root_server.stop()
        shutil.rmtree(root_server.socket.parent, ignore_errors=True)

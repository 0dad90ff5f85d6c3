"""The process as runc 1.1.5 sets it up, on configs written elsewhere: HOME from the
container's /etc/passwd, a session of its own, the hooks' environment, and the error
texts engines parse.  Each bundle runs under pyruntime and under runc; both must behave
the same (exit status, the key words of the error, what the container prints).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from support import Runtime, assert_clean_failure
from support.runc import AGAINST_RUNC, runc_runtime
from support.served import SOCKET_ENV

pytestmark = AGAINST_RUNC

PASSWD = "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n"


def both(runtime: Runtime, tmp_path: Path, token: str, body) -> list:
    """body(rt, cid) under pyruntime, then under runc; their results."""
    with runc_runtime(tmp_path, token) as runc:
        return [body(runtime, "ours"), body(runc, "theirs")]


def runc_text(stderr: str) -> str:
    """runc's error line without logrus's quoting of the message's quotes."""
    return stderr.replace('\\"', '"')


def write_passwd(rootfs: Path, text: str) -> None:
    passwd = rootfs / "etc" / "passwd"
    passwd.unlink()  # hard-linked to the session's template: never write it in place
    passwd.write_text(text)


# -- HOME ---------------------------------------------------------------------------------

def exec_homes(rt: Runtime, cid: str, b) -> list[str]:
    rt.create(b, cid)
    rt.start(cid)
    out = []
    for flags in (["--user", "1000:1000"], ["--user", "2000:2000"],
                  ["--env", "HOME=/custom"], ["--env", "HOME="]):
        res = rt.run("exec", *flags, cid, "sh", "-c", 'echo "HOME=$HOME"')
        assert res.returncode == 0, res.stderr
        out.append(res.stdout)
    rt.kill(cid, "KILL")
    rt.wait_status(cid, "stopped")
    rt.delete(cid)
    return [rt.output(cid), *out]  # read once it has stopped: `start` does not wait for it


def test_home_from_the_containers_passwd(runtime: Runtime, bundle, tmp_path: Path,
                                         test_token: str) -> None:
    b = bundle(["sh", "-c", 'echo "HOME=$HOME"; exec sleep 600'])
    write_passwd(b.rootfs, PASSWD)
    ours, theirs = both(runtime, tmp_path, test_token, lambda rt, cid: exec_homes(rt, cid, b))
    assert ours == ["HOME=/root\n", "HOME=/home/u\n", "HOME=/\n", "HOME=/custom\n",
                    "HOME=/root\n"]
    assert ours == theirs


@pytest.mark.parametrize("uid", [0, 1000])
def test_home_passwd_symlink_stays_in_the_rootfs(runtime: Runtime, bundle, tmp_path: Path,
                                                 test_token: str, uid: int) -> None:
    # /etc/passwd -> ../../../..<host path>: resolved as if the rootfs were "/", it names a
    # file that is not there, so HOME is "/", never the host file's /HOST
    host = tmp_path / "host-passwd"
    host.write_text("root:x:0:0::/HOST:/bin/sh\nu:x:1000:1000::/HOST:/bin/sh\n")
    b = bundle(["sh", "-c", 'echo "HOME=$HOME"'])
    b.config["process"]["user"] = {"uid": uid, "gid": uid}
    b.write()
    (b.rootfs / "etc" / "passwd").unlink()
    (b.rootfs / "etc" / "passwd").symlink_to("../" * 12 + str(host).lstrip("/"))
    outs = both(runtime, tmp_path, test_token,
                lambda rt, cid: rt.run_bundle(b, cid, check=False))
    assert [r.returncode for r in outs] == [0, 0], [r.stderr for r in outs]
    assert outs[0].stdout == outs[1].stdout == "HOME=/\n"


def test_home_through_a_symlink_inside_the_rootfs(runtime: Runtime, bundle, tmp_path: Path,
                                                  test_token: str) -> None:
    b = bundle(["sh", "-c", 'echo "HOME=$HOME"'])
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.write()
    (b.rootfs / "data").mkdir()
    (b.rootfs / "data" / "passwd").write_text(PASSWD)
    (b.rootfs / "etc" / "passwd").unlink()
    (b.rootfs / "etc" / "passwd").symlink_to("/data/passwd")
    outs = both(runtime, tmp_path, test_token, lambda rt, cid: rt.run_bundle(b, cid))
    assert outs[0].stdout == outs[1].stdout == "HOME=/home/u\n"


def test_home_from_a_passwd_bind_mounted_by_the_config(runtime: Runtime, bundle,
                                                       tmp_path: Path, test_token: str) -> None:
    # podman binds a passwd of its own over the image's
    host = tmp_path / "bound-passwd"
    host.write_text("u:x:1000:1000::/from-the-mount:/bin/sh\n")
    b = bundle(["sh", "-c", 'echo "HOME=$HOME"'])
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.config["mounts"].append({"destination": "/etc/passwd", "type": "bind",
                               "source": str(host), "options": ["bind", "ro"]})
    b.write()
    outs = both(runtime, tmp_path, test_token, lambda rt, cid: rt.run_bundle(b, cid))
    assert outs[0].stdout == outs[1].stdout == "HOME=/from-the-mount\n"


# -- sessions -----------------------------------------------------------------------------

# pid, pgrp, session, tty_nr of the shell itself (fields 1, 5, 6, 7 of /proc/self/stat)
STAT = 'read -r l < /proc/self/stat; set -- $l; echo "$1 $5 $6 $7"'


def sessions(rt: Runtime, cid: str, b) -> list[str]:
    rt.create(b, cid)
    rt.start(cid)
    res = rt.run("exec", cid, "sh", "-c", STAT)
    assert res.returncode == 0, res.stderr
    rt.kill(cid, "KILL")
    rt.wait_status(cid, "stopped")
    first = rt.output(cid).splitlines()[0]
    rt.delete(cid)
    return [first, res.stdout.strip()]


def test_the_process_leads_a_session_of_its_own(runtime: Runtime, bundle, tmp_path: Path,
                                                test_token: str) -> None:
    b = bundle(["sh", "-c", STAT + "; exec sleep 600"])
    ours, theirs = both(runtime, tmp_path, test_token, lambda rt, cid: sessions(rt, cid, b))
    assert ours[0] == theirs[0] == "1 1 1 0"  # the init: pid 1, its own group and session
    for line in (ours[1], theirs[1]):  # exec: pid N, group N, session N, no terminal
        pid, pgrp, sid, tty = line.split()
        assert pid == pgrp == sid and pid != "1" and tty == "0", line


def test_run_in_the_foreground_gets_a_session_too(runtime: Runtime, bundle, tmp_path: Path,
                                                  test_token: str) -> None:
    b = bundle(["sh", "-c", STAT])
    outs = both(runtime, tmp_path, test_token, lambda rt, cid: rt.run_bundle(b, cid))
    assert outs[0].stdout == outs[1].stdout == "1 1 1 0\n"


# -- hooks' environment -------------------------------------------------------------------

IGNORED = ("PWD=", "OLDPWD=", "SHLVL=", "_=")  # the shell's own, and its cwd (not this item)


def hook_env(rt: Runtime, cid: str, b, out: Path, env: dict[str, str]) -> dict:
    for f in out.iterdir():
        f.unlink()
    res = rt.run("run", "--bundle", b, cid, env=env)
    assert res.returncode == 0, res.stderr
    return {f.name: sorted(x for x in f.read_text().splitlines() if not x.startswith(IGNORED))
            for f in out.iterdir()}


def test_hook_environment(runtime: Runtime, bundle, tmp_path: Path, test_token: str) -> None:
    out = tmp_path / "hook-out"
    out.mkdir()
    out.chmod(0o777)

    def host(kind: str, env: list[str] | None = None) -> dict:
        h = {"path": "/bin/sh", "args": ["sh", "-c", f"env > {out}/{kind}"]}
        return h if env is None else {**h, "env": env}

    b = bundle(["true"], env=["FROM_PROCESS=1"])
    b.config["mounts"].append({"destination": str(out), "type": "bind", "source": str(out),
                               "options": ["rbind"]})
    b.config["hooks"] = {
        "prestart": [host("prestart")],
        "createRuntime": [host("createRuntime", ["ONLY=this"])],
        "createContainer": [host("createContainer")],
        "startContainer": [host("startContainer")],
        "poststart": [host("poststart")],
        "poststop": [host("poststop"), host("poststop-empty", [])],
    }
    write_passwd(b.rootfs, PASSWD)
    b.write()
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "FROM_RUNTIME": "1"}
    if SOCKET_ENV in os.environ:  # make test-served: the client finds the server by it
        env[SOCKET_ENV] = os.environ[SOCKET_ENV]
    ours, theirs = both(runtime, tmp_path, test_token,
                        lambda rt, cid: hook_env(rt, cid, b, out, env))
    runtime_env = sorted(f"{k}={v}" for k, v in env.items())
    assert ours["prestart"] == ours["poststart"] == ours["poststop"] == runtime_env
    assert ours["createRuntime"] == ["ONLY=this"]
    assert ours["poststop-empty"] == []
    # the hooks runc's init runs see the container process's environment
    assert ours["createContainer"] == sorted(b.config["process"]["env"])
    assert "FROM_PROCESS=1" in ours["createContainer"]
    assert ours["startContainer"] == sorted(["HOME=/root", *ours["createContainer"]])
    assert ours == theirs


# -- process.user.umask -------------------------------------------------------------------

def test_umask_out_of_range_is_refused(runtime: Runtime, bundle) -> None:
    b = bundle(["true"])
    b.config["process"]["user"]["umask"] = 0o1000
    b.write()
    res = runtime.run("create", "--bundle", b, "c1")
    assert_clean_failure(res, runtime, "c1", "process.user.umask")


def test_exec_umask_out_of_range_is_refused(runtime: Runtime, bundle, tmp_path: Path) -> None:
    import json

    b = bundle(["sleep", "600"])
    runtime.create(b, "c1")
    process = dict(b.config["process"], args=["true"], user={"uid": 0, "gid": 0, "umask": -1})
    (tmp_path / "p.json").write_text(json.dumps(process))
    res = runtime.run("exec", "--process", str(tmp_path / "p.json"), "c1")
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "pyruntime: process.json: user.umask: must be between 0 and 0777"], res.stderr


# -- error texts --------------------------------------------------------------------------

# (args, cwd, what both runtimes' error must contain): Docker maps create/start errors to
# exit codes by these words (127: not found, 126: permission denied)
ERRORS = [
    (["/nosuch"], "/", 'exec: "/nosuch": stat /nosuch: no such file or directory'),
    (["nosuch"], "/", 'exec: "nosuch": executable file not found in $PATH'),
    (["/noexec"], "/", 'exec: "/noexec": permission denied'),
    (["/bin"], "/", 'exec: "/bin": permission denied'),
    (["true"], "/noexec", "not a directory"),
]


@pytest.mark.parametrize(("args", "cwd", "words"), ERRORS, ids=[e[0][0] + e[1] for e in ERRORS])
def test_create_error_texts(runtime: Runtime, bundle, tmp_path: Path, test_token: str,
                            args: list[str], cwd: str, words: str) -> None:
    b = bundle(args)
    b.config["process"]["cwd"] = cwd
    b.write()
    (b.rootfs / "noexec").write_text("#!/bin/sh\necho x\n")
    (b.rootfs / "noexec").chmod(0o644)
    with runc_runtime(tmp_path, test_token) as runc:
        theirs = runc.create(b, "theirs", check=False)
        assert theirs.returncode == 1 and words in runc_text(theirs.stderr), theirs.stderr
    ours = runtime.create(b, "ours", check=False)
    line = assert_clean_failure(ours, runtime, "ours", words)
    assert words in line  # case-sensitive: the engines' matching is


def test_exec_error_texts(runtime: Runtime, bundle, tmp_path: Path, test_token: str) -> None:
    b = bundle(["sleep", "600"])

    def body(rt: Runtime, cid: str) -> list[str]:
        rt.create(b, cid)
        texts = []
        for args in (["/nosuch"], ["nosuch"], ["/bin"]):
            res = rt.run("exec", cid, *args)
            assert res.returncode != 0
            texts.append(res.stderr)
        rt.kill(cid, "KILL")
        rt.wait_status(cid, "stopped")
        rt.delete(cid)
        return texts

    ours, theirs = both(runtime, tmp_path, test_token, body)
    for words, mine, runcs in zip(['exec: "/nosuch": stat /nosuch: no such file or directory',
                                   'exec: "nosuch": executable file not found in $PATH',
                                   'exec: "/bin": permission denied'], ours, theirs,
                                  strict=True):
        assert words in mine and words in runc_text(runcs), (mine, runcs)
        assert len(mine.splitlines()) == 1 and re.match(r"pyruntime: exec: ", mine), mine


def test_cwd_only_root_can_enter(runtime: Runtime, bundle, tmp_path: Path,
                                 test_token: str) -> None:
    # runc enters the cwd before it changes the uid; a cwd the user cannot reach works
    b = bundle(["sh", "-c", "pwd; id -u"])
    b.config["process"]["cwd"] = "/private"
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.write()
    (b.rootfs / "private").mkdir(mode=0o700)
    outs = both(runtime, tmp_path, test_token, lambda rt, cid: rt.run_bundle(b, cid))
    assert outs[0].stdout == outs[1].stdout == "/private\n1000\n"


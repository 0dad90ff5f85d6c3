"""Run one generated config under pyruntime and under runc, and collect what each did.

Per test a FuzzHost holds what the cases share: a rootfs template (busybox plus a few
extras the strategies aim at), a directory of bind sources per runtime (with a submount,
for the recursive options), and a holder process whose network, uts, ipc and pid namespaces the
configs may join by path.  Per case and runtime: a bundle of its own (a fresh rootfs
clone, so one runtime's mkdirs never change what the other sees), its own cgroupsPath,
the same container id; runc with its own --root.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from differential import strategies
from differential.compare import Outcome, normalise
from support.cgroups import cgroups_path, find_cgroups, remove_cgroups
from support.leftovers import TOKEN_VAR
from support.rootfs import clone_rootfs
from support.runc import open_tmp_path_for_userns, runc_cleanup, runc_run
from support.runtime import Runtime

SIDES = ("pyruntime", "runc")
TIMEOUT = 60
NS_FILES = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt",
            "user": "user", "cgroup": "cgroup", "time": "time"}


@dataclass
class FuzzHost:
    """What the cases of one test share; close() undoes it."""

    base: Path
    runtime: Runtime
    token: str
    template: Path = field(init=False)
    hosts: dict[str, Path] = field(init=False)
    holder: subprocess.Popen[bytes] | None = field(init=False, default=None)
    holder_pid: int = field(init=False, default=0)
    ns_labels: dict[str, str] = field(init=False, default_factory=dict)
    runc_root: Path = field(init=False)
    count: int = field(init=False, default=0)

    def setup(self, busybox_rootfs: Path) -> FuzzHost:
        open_tmp_path_for_userns(self.base)
        self.template = self._template(busybox_rootfs)
        # bind sources: one tree per runtime, so that what one container writes through a
        # bind mount is never seen by the other (normalised to <host> in reports)
        self.hosts = {side: self._host_dir(f"host-{side}") for side in SIDES}
        self.runc_root = self.base / "runc-root"
        self._start_holder()
        for kind, name in NS_FILES.items():
            try:
                self.ns_labels[os.readlink(f"/proc/self/ns/{name}")] = "host"
                if self.holder_pid:
                    self.ns_labels.setdefault(
                        os.readlink(f"/proc/{self.holder_pid}/ns/{name}"), "joined")
            except OSError:
                pass
            del kind
        return self

    def _template(self, busybox_rootfs: Path) -> Path:
        t = clone_rootfs(busybox_rootfs, self.base / "template")
        passwd = t / "etc" / "passwd"
        text = passwd.read_text()
        passwd.unlink()  # a hard link to the session template: replace, never modify
        passwd.write_text(text + "user:x:1000:1000:user:/home/user:/bin/sh\n")
        (t / "existing-0700").mkdir(mode=0o700)
        (t / "existing-0700").chmod(0o700)
        (t / "link-mnt").symlink_to("/mnt")
        (t / "link-missing").symlink_to("/missing/target")
        (t / "home" / "user").mkdir()
        return t

    def _host_dir(self, name: str) -> Path:
        h = self.base / name
        (h / "data" / "sub").mkdir(parents=True)
        (h / "data" / "hello").write_text("hello\n")
        (h / "file").write_text("a file\n")
        (h / "tree" / "sub").mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "fz-sub", str(h / "tree/sub")],
                       check=True)
        return h

    def _start_holder(self) -> None:
        env = dict(os.environ, **{TOKEN_VAR: self.token})
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--uts", "--ipc", "--pid", "--fork", "--kill-child",
             "sleep", "100000"], env=env, stdin=subprocess.DEVNULL)
        children = Path(f"/proc/{self.holder.pid}/task/{self.holder.pid}/children")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pids = children.read_text().split() if children.exists() else []
            if pids:
                self.holder_pid = int(pids[0])
                return
            time.sleep(0.02)
        raise AssertionError("the namespace holder (unshare ... sleep) did not start")

    def close(self) -> None:
        if self.holder_pid:
            # the holder's sleep first: unshare's --kill-child only signals it when unshare
            # dies, and the test's leftover check may look before that landed
            try:
                os.kill(self.holder_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait(timeout=30)
        deadline = time.monotonic() + 30
        while self.holder_pid and _alive(self.holder_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        for h in self.hosts.values():
            subprocess.run(["umount", "-l", str(h / "tree" / "sub")], check=False)
        runc_cleanup(self.runc_root, self.base)

    # -- one case ----------------------------------------------------------------------------
    def run_case(self, config: dict[str, Any]) -> tuple[Outcome, Outcome]:
        self.count += 1
        n = self.count
        case = self.base / f"case-{n:04d}"
        case.mkdir()
        # again per case: a pytest session starting meanwhile makes pytest-of-root 0700
        open_tmp_path_for_userns(case)
        cid = f"fz{n}"
        outcomes = []
        for side in SIDES:
            bundle = case / f"bundle-{side}"  # not "pyruntime": `python -m` looks in cwd
            bundle.mkdir()
            clone_rootfs(self.template, bundle / "rootfs")
            (bundle / "hooklog").mkdir()
            cgroup = cgroups_path(self.token, f"fz{n}-{side}")
            concrete = self._materialise(config, bundle, cgroup, self.hosts[side])
            (bundle / "config.json").write_text(json.dumps(concrete, indent=1) + "\n")
            raw = self._run(side, bundle, cid, case)
            hooks = self._hook_outputs(bundle)
            left = self._leftovers(side, cid, cgroup, case)
            outcomes.append(normalise(raw, hooks, left, {
                str(bundle): "<bundle>", str(self.hosts[side]): "<host>", cgroup: "<cgroup>",
                f"{case.name}/bundle-{side}": "<case>/<bundle>"}, self.ns_labels))
        return outcomes[0], outcomes[1]

    def _materialise(self, config: dict[str, Any], bundle: Path, cgroup: str,
                     host: Path) -> dict[str, Any]:
        text = json.dumps(config)
        text = text.replace(strategies.HOST, str(host))
        text = text.replace(strategies.HOOKS, str(bundle / "hooklog"))
        for kind, name in NS_FILES.items():
            text = text.replace(strategies.ns_path(kind), f"/proc/{self.holder_pid}/ns/{name}")
        concrete = json.loads(text)
        concrete["process"]["env"] = [*concrete["process"].get("env", []),
                                      f"{TOKEN_VAR}={self.token}"]
        concrete["linux"]["cgroupsPath"] = cgroup
        return concrete

    def _run(self, side: str, bundle: Path, cid: str, cwd: Path) -> subprocess.CompletedProcess:
        try:
            if side == "runc":
                return runc_run(self.runc_root, bundle, cid, cwd=cwd, timeout=TIMEOUT)
            return self.runtime.run("run", "--bundle", bundle, cid, timeout=TIMEOUT, cwd=cwd)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(e.cmd, -1, _text(e.stdout), _text(e.stderr)
                                               + f"\n(timed out after {TIMEOUT}s)")

    def _hook_outputs(self, bundle: Path) -> dict[str, str]:
        out = {}
        for f in sorted((bundle / "hooklog").iterdir()):
            out[f.name] = f.read_text(errors="replace")
        tmp = bundle / "rootfs" / "tmp"
        for f in sorted(tmp.glob("hook-*.env")):
            out["rootfs:" + f.name] = f.read_text(errors="replace")
        return out

    def _leftovers(self, side: str, cid: str, cgroup: str, cwd: Path) -> list[str]:
        """What the runtime left after `run` returned (then removed, so the next case and
        the test's own leftover check start clean)."""
        left = []
        if side == "runc":
            left += [f"runc still lists {x}" for x in runc_cleanup(self.runc_root, cwd)]
        else:
            dirs = self.runtime.state_dirs()
            left += [f"state dir {x}" for x in dirs]
            for x in dirs:
                self.runtime.run("delete", "--force", x, timeout=TIMEOUT)
        cgroups = find_cgroups(cgroup)
        if cgroups:
            left.append("cgroup left")
            remove_cgroups(cgroups)
        return left


def _alive(pid: int) -> bool:
    """*pid* exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b if isinstance(b, str) else b.decode(errors="replace")

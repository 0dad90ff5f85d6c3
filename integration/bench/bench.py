"""pyruntime vs runc vs crun, side by side on this machine.  Run by run.sh.

Every timed scenario is ONE hyperfine invocation holding all the runtimes' commands,
so they run back to back under the same conditions; medians and ratios are printed and
written to build/bench/results.json and build/bench/results.md.

pyruntime runs two ways: "pyruntime" is the `pyruntime` command with a `pyruntime serve`
listening (started here; $PYRUNTIME_SERVE_SOCKET points the command at it), the way to
run it where speed matters; "pyruntime-cold" is the Python CLI itself (pyruntime-python),
what the command runs when no server listens.  A served call's work happens in a worker
forked by the server, which is not a child of the measured command: hyperfine's CPU
column cannot see it, so CPU is shown for the cold path only.

  (a) `run` of /bin/true
  (b) create + start + delete --force of /bin/true
  (c) 100 containers in sequence (`run` of /bin/true, 100 times)
  (d) 20 concurrent create / start / wait / delete (shim_driver.py, a shim-like driver)
  (e) peak RSS of `create` (GNU time's %M) and of the init waiting on the exec fifo
      (VmRSS / VmHWM), plus what the container's memory cgroup was charged
  (f) the smallest linux.resources.memory.limit under which `run` of /bin/true succeeds
      (binary search; the runtime applies the limit to the container's v1 memory cgroup)
  (g) `state` and `list` with 1 and with BENCH_G_COUNT (1,000) stopped containers present
  (h) a soak of the served path: BENCH_SOAK_CYCLES (1,000) create / start / delete --force
      cycles through the server, with the server's fds, RSS and children, the mounts, the
      cgroup directories, the state directories and the processes left measured at the
      start, every 100 cycles and at the end (they must stay flat)

The three runtimes get the same bundle: runc's default config.json (terminal off) running
/bin/true from a busybox-static rootfs, with an absolute linux.cgroupsPath below this
process's own cgroups (so that all three create the same cgroups, which the house rules
allow: they nest under our own, and they are removed at the end).  Each runtime has its
own --root under /run/pyrt-bench-PID.

Environment: BENCH_RUNS (hyperfine runs, default 20), BENCH_WARMUP (3), BENCH_SEQ_RUNS
(runs of (c) and (d), 5), BENCH_G_COUNT (1000), BENCH_PYRUNTIME (the pyruntime command,
default .venv/bin/pyruntime), BENCH_PYRUNTIME_COLD (default .venv/bin/pyruntime-python).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(os.environ.get("BENCH_REPO") or Path(__file__).resolve().parents[2])
HERE = REPO / "integration" / "bench"
OUT = REPO / "build" / "bench"
sys.path.insert(0, str(REPO / "tests"))

from support.config import default_config  # noqa: E402
from support.rootfs import build_busybox_rootfs  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "20"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "3"))
SEQ_RUNS = int(os.environ.get("BENCH_SEQ_RUNS", "5"))
G_COUNT = int(os.environ.get("BENCH_G_COUNT", "1000"))
SOAK_CYCLES = int(os.environ.get("BENCH_SOAK_CYCLES", "1000"))
RUNTIMES = {
    "pyruntime": shlex.split(os.environ.get("BENCH_PYRUNTIME",
                                            str(REPO / ".venv" / "bin" / "pyruntime"))),
    "pyruntime-cold": shlex.split(os.environ.get(
        "BENCH_PYRUNTIME_COLD", str(REPO / ".venv" / "bin" / "pyruntime-python"))),
    "runc": ["runc"],
    "crun": ["crun"],
}
SCENARIOS = "abcdefgh"
MiB = 1024 * 1024


# ---------------------------------------------------------------------------------------
# cgroups: one base directory below our own cgroup in every hierarchy


class Cgroups:
    """An absolute cgroupsPath base that lies below our own cgroup in every hierarchy.

    On this host our memory cgroup is /process_api/<h> while the others are /, so
    /process_api/<h>/pyrt-bench-PID nests under our own everywhere.  Directories this
    creates (the base, and ancestors missing in some hierarchy) are removed at the end.
    """

    def __init__(self) -> None:
        own: dict[str, str] = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            own[controllers] = path
        self.mounts: list[tuple[str, str]] = []  # (mountpoint, our own path there)
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fstype, _source, opts = right.split(" ")[:3]
            mount_root, point = left.split(" ")[3:5]
            if fstype == "cgroup2":
                key: str | None = ""
            elif fstype == "cgroup":
                superopts = set(opts.split(","))
                key = next((k for k in own if k and set(k.split(",")) <= superopts), None)
            else:
                continue
            if key is None or key not in own or mount_root != "/":
                continue
            self.mounts.append((point, own[key]))
        deepest = max((p for _, p in self.mounts), key=len)
        for point, path in self.mounts:
            if not (deepest + "/").startswith(path.rstrip("/") + "/"):
                raise SystemExit(f"bench: own cgroups do not nest ({point}: {path} vs "
                                 f"{deepest}); cannot pick one cgroupsPath for all")
        self.base = f"{deepest.rstrip('/')}/pyrt-bench-{os.getpid()}"
        self.missing: list[str] = []  # directories to remove at the end, deepest first
        for point, _ in self.mounts:
            parts = self.base.strip("/").split("/")
            for i in range(len(parts), 0, -1):
                d = os.path.join(point, *parts[:i])
                if os.path.isdir(d):
                    break
                self.missing.append(d)

    def make_base(self) -> None:
        """Make the base in every hierarchy before any runtime runs, so that no runtime
        counts it as its own (one would try to remove it on delete while others use it)."""
        for point, _ in self.mounts:
            parts = self.base.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                d = os.path.join(point, *parts[:i])
                if not os.path.isdir(d):
                    os.mkdir(d)
                for name in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset: empty until filled
                    f = os.path.join(d, name)
                    if os.path.exists(f) and not Path(f).read_text().strip():
                        Path(f).write_text(Path(os.path.dirname(d), name).read_text())

    def path(self, cid: str) -> str:
        return f"{self.base}/{cid}"

    def memory_dir(self, cid: str) -> str | None:
        for point, _ in self.mounts:
            if point.endswith("/memory"):
                return point + self.path(cid)
        return None

    def procs(self) -> list[int]:
        """Pids still in a cgroup below the base (a runtime failed to clean up)."""
        pids: set[int] = set()
        for point, _ in self.mounts:
            top = point + self.base
            for dirpath, _dirs, files in os.walk(top):
                if "cgroup.procs" in files:
                    try:
                        pids.update(int(x) for x in
                                    Path(dirpath, "cgroup.procs").read_text().split())
                    except OSError:
                        pass
        return sorted(pids)

    def cleanup(self) -> None:
        for pid in self.procs():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        if self.procs():
            time.sleep(0.2)
        for point, _ in self.mounts:
            top = point + self.base
            if os.path.isdir(top):
                for dirpath, _dirs, _files in os.walk(top, topdown=False):
                    try:
                        os.rmdir(dirpath)
                    except OSError as e:
                        print(f"bench: cannot remove cgroup {dirpath}: {e}", file=sys.stderr)
        for d in sorted(set(self.missing), key=lambda p: -p.count("/")):
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError as e:
                print(f"bench: cannot remove cgroup {d}: {e}", file=sys.stderr)


# ---------------------------------------------------------------------------------------
# bundles and runtimes


class Bench:
    def __init__(self) -> None:
        self.cg = Cgroups()
        self.cg.make_base()
        self.work = Path(f"/run/pyrt-bench-{os.getpid()}")
        self.work.mkdir(mode=0o700)
        self.bundles = self.work / "bundles"
        self.rootfs = OUT / "rootfs"
        if not (self.rootfs / "bin" / "true").exists():
            shutil.rmtree(self.rootfs, ignore_errors=True)
            build_busybox_rootfs(self.rootfs)

    def root(self, rt: str, tag: str = "") -> str:
        return str(self.work / "roots" / f"{rt}{tag}")

    def bundle(self, cid: str, resources: dict | None = None) -> str:
        """A bundle for container `cid`: its own cgroupsPath, the shared rootfs."""
        path = self.bundles / cid
        path.mkdir(parents=True, exist_ok=True)
        config = default_config(["/bin/true"])
        config["root"]["path"] = str(self.rootfs)
        config["linux"]["cgroupsPath"] = self.cg.path(cid)
        if resources:
            config["linux"]["resources"].update(resources)
        (path / "config.json").write_text(json.dumps(config, indent=1))
        return str(path)

    def cmd(self, rt: str, *args: str, tag: str = "") -> list[str]:
        return [*RUNTIMES[rt], "--root", self.root(rt, tag), *args]

    def sh(self, rt: str, *args: str, tag: str = "") -> str:
        return shlex.join(self.cmd(rt, *args, tag=tag))

    def cleanup(self) -> None:
        """delete --force whatever any runtime still has, then the cgroups, then the dirs."""
        roots = self.work / "roots"
        if roots.is_dir():
            for root in roots.iterdir():
                rt = next((r for r in sorted(RUNTIMES, key=len, reverse=True)
                           if root.name.startswith(r)), None)
                if rt is None or not root.is_dir():
                    continue
                ids = [d.name for d in root.iterdir() if d.is_dir()]
                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(lambda cid, rt=rt, root=root: quiet(
                        [*RUNTIMES[rt], "--root", str(root), "delete", "--force", cid]), ids))
        self.cg.cleanup()
        shutil.rmtree(self.work, ignore_errors=True)


SERVER: Server | None = None  # the one below, once started


class Server:
    """`pyruntime serve` for the "pyruntime" column, for the whole run."""

    def __init__(self) -> None:
        self.socket = f"/run/pyrt-bench-serve-{os.getpid()}.sock"
        self.proc = subprocess.Popen([*RUNTIMES["pyruntime-cold"], "serve", "--socket",
                                      self.socket], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, text=True)
        if not self.proc.stdout.readline().startswith("ready "):
            self.stop()
            raise RuntimeError("pyruntime serve did not start")
        os.environ["PYRUNTIME_SERVE_SOCKET"] = self.socket
        global SERVER
        SERVER = self

    def stop(self) -> None:
        os.environ.pop("PYRUNTIME_SERVE_SOCKET", None)
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)


def quiet(argv: list[str], timeout: float = 60) -> int:
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return -1


def checked(argv: list[str]) -> None:
    import tempfile

    # stderr to a file, not a pipe: a created container's init holds the runtime's stdio
    # open until it starts, so reading a pipe to EOF would wait for the container
    with tempfile.TemporaryFile("w+") as err:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=err, timeout=60)
        if r.returncode:
            err.seek(0)
            raise RuntimeError(f"{shlex.join(argv)}: exit {r.returncode}: {err.read().strip()}")


# ---------------------------------------------------------------------------------------
# hyperfine


def hyperfine(name: str, commands: dict[str, str], runs: int = RUNS,
              warmup: int = WARMUP) -> dict[str, dict]:
    """One hyperfine invocation for all commands; {label: stats in ms}."""
    export = OUT / f"hyperfine-{name}.json"
    argv = ["hyperfine", "--style", "basic", "--warmup", str(warmup), "--runs", str(runs),
            "--export-json", str(export)]
    for label, command in commands.items():
        argv += ["-n", label, command]
    print(f"\n== ({name})", flush=True)
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    data = json.loads(export.read_text())
    out = {}
    for r in data["results"]:
        times = [t * 1000 for t in r["times"]]
        out[r["command"]] = {
            "median": statistics.median(times), "mean": statistics.fmean(times),
            "stddev": statistics.stdev(times) if len(times) > 1 else 0.0,
            "min": min(times), "max": max(times), "runs": len(times),
            # CPU time (user + system, mean over runs, the runtime's children included):
            # steadier than wall time when the machine is busy with other work
            "cpu": (r["user"] + r["system"]) * 1000,
        }
    return out


def timed(b: Bench, name: str, build: object, runs: int = RUNS) -> dict:
    commands = {rt: build(rt) for rt in RUNTIMES}  # type: ignore[operator]
    return {"unit": "ms", "results": hyperfine(name, commands, runs=runs,
                                               warmup=min(WARMUP, runs))}


def scenario_a(b: Bench) -> dict:
    bundle = b.bundle("a1")
    return timed(b, "a", lambda rt: b.sh(rt, "run", "--bundle", bundle, "a1"))


def scenario_b(b: Bench) -> dict:
    bundle = b.bundle("b1")
    return timed(b, "b", lambda rt: " && ".join((
        b.sh(rt, "create", "--bundle", bundle, "b1"), b.sh(rt, "start", "b1"),
        b.sh(rt, "delete", "--force", "b1"))))


def scenario_c(b: Bench) -> dict:
    bundle = b.bundle("c1")
    return timed(b, "c", lambda rt: (
        "i=0; while [ $i -lt 100 ]; do "
        f"{b.sh(rt, 'run', '--bundle', bundle, 'c1')} || exit 1; i=$((i+1)); done"),
        runs=SEQ_RUNS)


def scenario_d(b: Bench) -> dict:
    for i in range(20):
        b.bundle(f"d{i}")
    driver = [sys.executable, "-S", "-E", str(HERE / "shim_driver.py"), "20", str(b.bundles),
              str(b.work / "pids"), "d"]
    (b.work / "pids").mkdir(exist_ok=True)
    return timed(b, "d", lambda rt: shlex.join([*driver, *b.cmd(rt)]), runs=SEQ_RUNS)


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def scenario_e(b: Bench) -> dict:
    """Peak RSS of `create`, the waiting init's RSS, the container cgroup's charge."""
    results: dict[str, dict] = {}
    for rt in RUNTIMES:
        samples: dict[str, list[int]] = {"create_maxrss_kib": [], "init_rss_kib": [],
                                         "init_hwm_kib": [], "cgroup_max_usage_kib": []}
        for i in range(5):
            cid = f"e{i}"
            bundle = b.bundle(cid)
            pid_file = b.work / f"{rt}-{cid}.pid"
            # GNU time, not our own wait4: a child's ru_maxrss starts from the high-water
            # mark of the memory it had before execve, which for a fork of this Python
            # process is ~18 MiB whatever the runtime uses; time(1)'s is ~2 MiB
            maxrss = b.work / "maxrss"
            code = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(maxrss),
                                   *b.cmd(rt, "create", "--bundle", bundle, "--pid-file",
                                          str(pid_file), cid)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL).returncode
            if code:
                raise RuntimeError(f"(e) {rt} create failed: exit {code}")
            try:
                init = int(pid_file.read_text())
                st = _status(init)
                samples["create_maxrss_kib"].append(int(maxrss.read_text().split()[-1]))
                samples["init_rss_kib"].append(st["VmRSS"])
                samples["init_hwm_kib"].append(st["VmHWM"])
                mem = b.cg.memory_dir(cid)
                if mem and os.path.exists(f"{mem}/memory.max_usage_in_bytes"):
                    used = int(Path(f"{mem}/memory.max_usage_in_bytes").read_text())
                    samples["cgroup_max_usage_kib"].append(used // 1024)
            finally:
                quiet(b.cmd(rt, "delete", "--force", cid))
        results[rt] = {k: statistics.median(v) for k, v in samples.items() if v}
        print(f"(e) {rt}: {results[rt]}", flush=True)
    return {"unit": "KiB", "results": results}


def scenario_f(b: Bench) -> dict:
    """The smallest memory limit under which `run` of /bin/true succeeds (4 KiB steps)."""
    results: dict[str, dict] = {}
    counter = iter(range(10**6))

    def starts(rt: str, limit: int) -> bool:
        cid = f"f{next(counter)}"
        bundle = b.bundle(cid, {"memory": {"limit": limit}})
        ok = quiet(b.cmd(rt, "run", "--bundle", bundle, cid), timeout=30) == 0
        if not ok:
            quiet(b.cmd(rt, "delete", "--force", cid))
        shutil.rmtree(bundle, ignore_errors=True)
        return ok

    for rt in RUNTIMES:
        lo, hi = 0, 64 * MiB  # lo fails (assumed), hi starts
        if not starts(rt, hi):
            results[rt] = {"min_limit_kib": None, "starts_at_1mib": False}
            continue
        while hi - lo > 4096:
            mid = (lo + hi) // 2 // 4096 * 4096
            if starts(rt, mid):
                hi = mid
            else:
                lo = mid
        # memory use varies a little from run to run: report the limit that works 3/3
        while not all(starts(rt, hi) for _ in range(3)):
            hi += 16 * 1024
        results[rt] = {"min_limit_kib": hi // 1024, "starts_at_1mib": starts(rt, MiB)}
        print(f"(f) {rt}: {results[rt]}", flush=True)
    return {"unit": "KiB", "results": results}


def scenario_g(b: Bench) -> dict:
    """state/list with 1 and with G_COUNT stopped containers (created, started, exited)."""

    def populate(rt: str, tag: str, n: int) -> None:
        def one(i: int) -> None:
            cid = f"g{tag}{i}"
            bundle = b.bundle(cid)
            checked(b.cmd(rt, "create", "--bundle", bundle, cid, tag=tag))
            checked(b.cmd(rt, "start", cid, tag=tag))

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, range(n)))

    t0 = time.monotonic()
    for rt in RUNTIMES:
        populate(rt, "-1", 1)
        populate(rt, f"-{G_COUNT}", G_COUNT)
    print(f"(g) populated {len(RUNTIMES)} x (1 + {G_COUNT}) containers in "
          f"{time.monotonic() - t0:.0f} s", flush=True)
    out = {"unit": "ms", "count": G_COUNT, "results": {}}
    for verb in ("state", "list"):
        commands = {}
        for rt in RUNTIMES:
            for tag in ("-1", f"-{G_COUNT}"):
                args = ("state", f"g{tag}0") if verb == "state" else ("list",)
                commands[f"{rt} {verb}{tag}"] = b.sh(rt, *args, tag=tag)
        out["results"].update(hyperfine(f"g-{verb}", commands))
    return out


def _count_lines(path: str) -> int:
    with open(path) as f:
        return sum(1 for _ in f)


def _mount_points() -> set[str]:
    """This mount namespace's mount points (a changed one: the runtime's, or a mount of
    the host that was copied in at unshare and detached since because someone removed
    its mount point)."""
    with open("/proc/self/mountinfo") as f:
        return {line.split(" ")[4] for line in f}


def _soak_sample(b: Bench, server_pid: int, cycle: int) -> dict[str, int]:
    """What a leak would grow: the server's fds, RSS and children (spares), the mounts of
    this mount namespace (the runtime's), cgroup directories below the bench's base,
    state directories, and processes left in the containers' cgroups."""
    children_file = Path(f"/proc/{server_pid}/task/{server_pid}/children")
    for _ in range(100):  # the last call's worker may still be exiting: let it
        children = children_file.read_text().split()
        if len(children) <= 2:  # the spares (pyruntime/served/server.py)
            break
        time.sleep(0.01)
    st = _status(server_pid)
    cgroup_dirs = 0
    for point, _ in b.cg.mounts:
        for _dirpath, dirs, _files in os.walk(point + b.cg.base):
            cgroup_dirs += len(dirs)
    root = Path(b.root("pyruntime", "-soak"))
    return {
        "cycle": cycle,
        "server_fds": len(os.listdir(f"/proc/{server_pid}/fd")),
        "server_rss_kib": st["VmRSS"],
        "server_children": len(children),
        "mounts": _count_lines("/proc/self/mountinfo"),
        "cgroup_dirs": cgroup_dirs,
        "state_dirs": sum(1 for d in root.iterdir() if d.is_dir()) if root.is_dir() else 0,
        "container_procs": len(b.cg.procs()),
    }


def scenario_h(b: Bench) -> dict:
    """SOAK_CYCLES create / start / delete --force through the server, sampled."""
    if SERVER is None:
        raise RuntimeError("(h) needs the bench's pyruntime serve")
    pid = SERVER.proc.pid
    bundle = b.bundle("h1")
    create = b.cmd("pyruntime", "create", "--bundle", bundle, "h1", tag="-soak")
    start = b.cmd("pyruntime", "start", "h1", tag="-soak")
    delete = b.cmd("pyruntime", "delete", "--force", "h1", tag="-soak")
    for _ in range(10):  # warm: the first calls fill caches the later ones reuse
        checked(create), checked(start), checked(delete)
    mounts_before = _mount_points()
    samples = [_soak_sample(b, pid, 0)]
    print(f"\n== (h) {SOAK_CYCLES} cycles: {samples[0]}", flush=True)
    t0 = time.monotonic()
    for i in range(1, SOAK_CYCLES + 1):
        checked(create)
        checked(start)
        checked(delete)
        if i % 100 == 0 or i == SOAK_CYCLES:
            samples.append(_soak_sample(b, pid, i))
            print(f"(h) {samples[-1]}", flush=True)
    seconds = time.monotonic() - t0
    # served, not cold after a timeout: init forked by the client, not by Python
    pid_file = b.work / "h1.pid"
    checked([*create[:-1], "--pid-file", str(pid_file), "h1"])
    forked_by = os.path.realpath(f"/proc/{int(pid_file.read_text())}/exe")
    checked(delete)
    served = forked_by == os.path.realpath(RUNTIMES["pyruntime"][0])
    print(f"(h) after the soak, init was forked by {forked_by}: served {served}", flush=True)
    mounts_after = _mount_points()
    changed = {"added": sorted(mounts_after - mounts_before),
               "removed": sorted(mounts_before - mounts_after)}
    print(f"(h) mount points added / removed: {changed}", flush=True)
    return {"cycles": SOAK_CYCLES, "seconds": round(seconds, 1), "start": samples[0],
            "end": samples[-1], "samples": samples, "still_served": served,
            "mounts_changed": changed}


# ---------------------------------------------------------------------------------------
# summary


def version(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "?"


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
        "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30),
        "os": next((line.split("=", 1)[1].strip('"') for line in
                    Path("/etc/os-release").read_text().splitlines()
                    if line.startswith("PRETTY_NAME=")), "?"),
        "runc": version(["runc", "--version"]), "crun": version(["crun", "--version"]),
        "python": platform.python_version(), "hyperfine": version(["hyperfine", "--version"]),
        "pyruntime_command": shlex.join(RUNTIMES["pyruntime"]),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }


TITLES = {
    "a": "(a) run /bin/true",
    "b": "(b) create + start + delete --force",
    "c": "(c) 100 containers in sequence",
    "d": "(d) 20 concurrent create/start/wait/delete",
}


def ratio(x: float | None, y: float | None) -> str:
    return f"{x / y:.2f}x" if x and y else "-"


def markdown(results: dict) -> str:
    m = results.get("machine", {})
    s = results.get("scenarios", {})
    lines = [
        f"Measured {m.get('date', '?')} on {m.get('nproc')} x {m.get('cpu')}, "
        f"{m.get('memory_gib')} GiB, {m.get('os')}, kernel {m.get('kernel')}; "
        f"{m.get('runc')}, {m.get('crun')}, Python {m.get('python')}, {m.get('hyperfine')}; "
        f"load average at the start {' '.join(m.get('loadavg', []))}.",
        "",
        "| scenario | pyruntime (served) | pyruntime (cold) | runc | crun "
        "| served/runc | served/crun | cold/runc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def ratios(v: dict) -> str:
        return (f"{ratio(v.get('pyruntime'), v.get('runc'))} | "
                f"{ratio(v.get('pyruntime'), v.get('crun'))} | "
                f"{ratio(v.get('pyruntime-cold'), v.get('runc'))} |")

    for key in "abcd":
        if key in s:
            r = s[key]["results"]
            for field, what in (("median", "wall, median"), ("cpu", "CPU, mean")):
                med = {rt: r[rt][field] for rt in RUNTIMES if field in r.get(rt, {})}
                if field == "cpu":
                    med.pop("pyruntime", None)  # the server's worker: not hyperfine's child
                if not med:
                    continue
                cells = [f"{med[rt]:.1f} ms" if rt in med else "-" for rt in RUNTIMES]
                lines.append(f"| {TITLES[key]} ({what}) | " + " | ".join(cells) + " | "
                             + ratios(med))
    if "e" in s:
        r = s["e"]["results"]
        for field, title in (("create_maxrss_kib", "(e) peak RSS of `create`"),
                             ("init_rss_kib", "(e) RSS of the init waiting on the fifo"),
                             ("init_hwm_kib", "(e) peak RSS of that init (VmHWM)"),
                             ("cgroup_max_usage_kib",
                              "(e) container memory cgroup's peak charge at create")):
            vals = {rt: r.get(rt, {}).get(field) for rt in RUNTIMES}
            cells = [f"{vals[rt] / 1024:.1f} MiB" if vals[rt] is not None else "-"
                     for rt in RUNTIMES]
            lines.append(f"| {title} | " + " | ".join(cells) + " | " + ratios(vals))
    if "f" in s:
        r = s["f"]["results"]
        vals = {rt: r.get(rt, {}).get("min_limit_kib") for rt in RUNTIMES}
        cells = [f"{vals[rt]} KiB" if vals[rt] is not None else "fails" for rt in RUNTIMES]
        lines.append("| (f) smallest memory limit that starts /bin/true | " + " | ".join(cells)
                     + " | " + ratios(vals))
        cells = ["yes" if r.get(rt, {}).get("starts_at_1mib") else "no" for rt in RUNTIMES]
        lines.append("| (f) starts under a 1 MiB limit | " + " | ".join(cells) + " | | | |")
    if "g" in s:
        r = s["g"]["results"]
        n = s["g"].get("count", G_COUNT)
        for verb in ("state", "list"):
            for tag in ("-1", f"-{n}"):
                med = {rt: r.get(f"{rt} {verb}{tag}", {}).get("median") for rt in RUNTIMES}
                cells = [f"{med[rt]:.1f} ms" if med[rt] else "-" for rt in RUNTIMES]
                lines.append(f"| (g) `{verb}` with {tag[1:]} container(s) | "
                             + " | ".join(cells) + " | " + ratios(med))
    if "h" in s:
        h = s["h"]
        first, last = h["start"], h["end"]
        peak = {k: max(x[k] for x in h["samples"]) for k in first}
        lines += ["", f"(h) soak: {h['cycles']} create / start / delete --force cycles through "
                  f"the server in {h['seconds']} s (still served at the end: "
                  f"{'yes' if h.get('still_served') else 'NO'})", "",
                  "| measured | at the start | after | peak |", "|---|---:|---:|---:|"]
        for key, title in SOAK_TITLES.items():
            lines.append(f"| {title} | {first[key]} | {last[key]} | {peak[key]} |")
        changed = h.get("mounts_changed", {})
        if changed.get("added") or changed.get("removed"):
            lines += ["", f"(h) mount points added: {changed['added']}, removed: "
                      f"{changed['removed']}"]
    return "\n".join(lines) + "\n"


SOAK_TITLES = {
    "server_fds": "server's open fds",
    "server_rss_kib": "server's RSS (KiB)",
    "server_children": "server's children (spare workers)",
    "mounts": "mounts (this mount namespace)",
    "cgroup_dirs": "cgroup directories below the bench's",
    "state_dirs": "container state directories",
    "container_procs": "processes in the containers' cgroups",
}


def summary() -> int:
    """Print the table again from results.json (adding CPU times from hyperfine's exports)."""
    results = json.loads((OUT / "results.json").read_text())
    for key, scenario in results.get("scenarios", {}).items():
        export = OUT / f"hyperfine-{key}.json"
        if key in "abcd" and export.exists():
            for r in json.loads(export.read_text())["results"]:
                scenario["results"].get(r["command"], {}).setdefault(
                    "cpu", (r["user"] + r["system"]) * 1000)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (OUT / "results.md").write_text(table)
    print(table)
    return 0


def main(argv: list[str]) -> int:
    if argv == ["--summary"]:
        return summary()
    chosen = "".join(argv).replace(" ", "") or SCENARIOS
    if set(chosen) - set(SCENARIOS):
        print(f"usage: run.sh [{' '.join(SCENARIOS)}]...", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    results_path = OUT / "results.json"
    try:
        results = json.loads(results_path.read_text())
    except (OSError, ValueError):
        results = {}
    results["machine"] = machine()
    results.setdefault("scenarios", {})
    failed = []
    server = Server()
    bench = Bench()
    try:
        for key in SCENARIOS:
            if key not in chosen:
                continue
            try:
                results["scenarios"][key] = globals()[f"scenario_{key}"](bench)
            except (subprocess.SubprocessError, RuntimeError, OSError) as e:
                print(f"bench: ({key}) failed: {e}", file=sys.stderr)
                failed.append(key)
            results_path.write_text(json.dumps(results, indent=2) + "\n")  # as we go
            bench.cleanup()
            bench = Bench()
    finally:
        bench.cleanup()
        server.stop()
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (OUT / "results.md").write_text(table)
    print("\n" + table)
    print(f"bench: results in {results_path} and {OUT / 'results.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

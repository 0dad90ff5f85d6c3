"""The verbs' edges that engines rely on, each run under runc 1.1.5 (the oracle) as well:
exit statuses of delete --force and kill --all on ids that are gone or stopped, usage
errors, the --log file opened at start-up, which sysctls conflict with the hostname and
domainname fields, and linux.resources.network on a host without net_cls/net_prio.

Where pyruntime departs from runc on purpose, the test says why next to the assertion.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from support import Runtime, assert_clean_failure, stderr_lines
from support.runc import AGAINST_RUNC, RUNC

pytestmark = AGAINST_RUNC


class Runc:
    """runc on a private --root, run the way Runtime.run runs pyruntime."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "runc-root"
        self.cwd = tmp_path

    def run(self, *args: str | Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Output through files, not pipes: a created container's init keeps the stdio it
        inherited, and a pipe would not see EOF until it exits."""
        argv = [RUNC, "--root", str(self.root), *map(str, args)]
        out, err = self.cwd / "runc.out", self.cwd / "runc.err"
        with open(out, "w") as o, open(err, "w") as e:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                  timeout=timeout, cwd=self.cwd)
        return subprocess.CompletedProcess(argv, proc.returncode, out.read_text(),
                                           err.read_text())

    def cleanup(self, *ids: str) -> None:
        for cid in ids:
            self.run("delete", "--force", cid)


@pytest.fixture
def runc(tmp_path: Path):
    r = Runc(tmp_path)
    yield r
    if r.root.is_dir():
        r.cleanup(*(p.name for p in r.root.iterdir() if p.is_dir()))


def both(runtime: Runtime, runc: Runc, *args: str | Path) -> tuple[int, int]:
    """The exit status of the same verb under pyruntime and runc."""
    return runtime.run(*args).returncode, runc.run(*args).returncode


# -- ids that are gone or stopped ------------------------------------------------------------

def test_delete_force_of_a_missing_id_succeeds(runtime: Runtime, runc: Runc) -> None:
    # engines call it after a foreground run has already removed the container
    assert both(runtime, runc, "delete", "--force", "nosuch") == (0, 0)
    ours = runtime.run("delete", "nosuch")
    assert (ours.returncode, runc.run("delete", "nosuch").returncode) == (1, 1)
    assert "does not exist" in ours.stderr


def wait_stopped(status) -> None:  # a callable returning the status
    deadline = time.monotonic() + 30
    while status() != "stopped":
        assert time.monotonic() < deadline, "the container did not stop"
        time.sleep(0.05)


def test_kill_all_of_a_stopped_container_succeeds(runtime: Runtime, runc: Runc,
                                                  bundle) -> None:
    b = bundle(["true"])
    runtime.create(b, "c1")
    runtime.start("c1")
    wait_stopped(lambda: runtime.status("c1"))
    r = runc.run("create", "--bundle", b, "c1")
    assert r.returncode == 0, r.stderr
    assert runc.run("start", "c1").returncode == 0
    wait_stopped(lambda: runc.run("state", "c1").stdout.split('"status": "')[1].split('"')[0])

    assert both(runtime, runc, "kill", "--all", "c1", "KILL") == (0, 0)
    # the init alone: "container not running", exit 1, in both
    ours = runtime.run("kill", "c1", "KILL")
    assert (ours.returncode, runc.run("kill", "c1", "KILL").returncode) == (1, 1)
    assert "not running" in ours.stderr
    assert both(runtime, runc, "delete", "c1") == (0, 0)


def test_kill_with_an_empty_signal_is_an_error(runtime: Runtime, bundle) -> None:
    # Deliberate departure: runc 1.1.5 sends SIGTERM for `kill ID ""` (an empty argument
    # reads as a missing one); an empty signal is a caller's bug, so pyruntime refuses it
    # and the container keeps running.
    runtime.create(bundle(["sleep", "60"]), "c1")
    result = runtime.run("kill", "c1", "")
    assert result.returncode == 1
    assert len(stderr_lines(result)) == 1 and "invalid signal" in result.stderr
    assert runtime.status("c1") == "created"
    runtime.delete("c1", force=True)


# -- usage errors and the log file -------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ("list", "--bogus"),
    ("--bogus", "list"),
    ("kill",),
    ("state",),
    ("delete", "a", "b"),
], ids=["unknown-option", "unknown-global", "missing-id", "missing-id-state", "extra-arg"])
def test_usage_errors_exit_1(runtime: Runtime, runc: Runc, argv: tuple[str, ...]) -> None:
    assert both(runtime, runc, *argv) == (1, 1)
    assert len(stderr_lines(runtime.run(*argv))) == 1


def test_options_may_follow_positionals(runtime: Runtime) -> None:
    # pyruntime's own verbs read like a person types them; a container's command line
    # (exec ID ARGS...) keeps its options, so `exec ID ls -l` is untouched by this
    result = runtime.run("image", "inspect", "nosuch", "--format", "json")
    assert result.returncode == 1 and "no image named 'nosuch'" in result.stderr


def test_unusable_log_path_fails_at_start(runtime: Runtime, runc: Runc, bundle,
                                          tmp_path: Path) -> None:
    log = tmp_path / "no-such-dir" / "log.json"
    b = bundle(["true"])
    ours = runtime.run("--log", log, "--log-format", "json", "create", "--bundle", b, "c1")
    theirs = runc.run("--log", log, "--log-format", "json", "create", "--bundle", b, "c1")
    assert (ours.returncode, theirs.returncode) == (1, 1)
    line = assert_clean_failure(ours, runtime, "c1", str(log))
    assert "no such file or directory" in line
    assert not log.parent.exists()
    # a usable path is created and written to, as before
    good = tmp_path / "log.json"
    assert runtime.run("--log", good, "--log-format", "json", "state", "c1").returncode == 1
    assert '"level":"error"' in good.read_text().replace(" ", "")


# -- sysctls against the hostname and domainname fields -----------------------------------------

def test_kernel_hostname_sysctl_is_refused(runtime: Runtime, runc: Runc, bundle) -> None:
    for with_field in (True, False):
        b = bundle(name=f"b{with_field}")
        b.config["linux"]["sysctl"] = {"kernel.hostname": "fromsysctl"}
        if not with_field:
            del b.config["hostname"]
        b.write()
        cid = f"h{with_field}"
        assert runc.run("create", "--bundle", b, cid).returncode == 1
        result = runtime.run("create", "--bundle", b, cid)
        assert_clean_failure(result, runtime, cid, "conflicts with the hostname field")


def test_kernel_domainname_sysctl_equal_to_the_field(runtime: Runtime, runc: Runc,
                                                     bundle) -> None:
    b = bundle(["cat", "/proc/sys/kernel/domainname"], {"domainname": "example.test"})
    b.config["linux"]["sysctl"] = {"kernel.domainname": "example.test"}
    b.write()
    assert runtime.run_bundle(b, "c1").stdout.strip() == "example.test"
    theirs = runc.run("run", "--bundle", b, "c1")
    assert (theirs.returncode, theirs.stdout.strip()) == (0, "example.test")

    # Deliberate departure: runc 1.1.5 ignores the domainname field (runtime-spec 1.1) and
    # so accepts any sysctl value; pyruntime honours the field and refuses two values.
    b.config["linux"]["sysctl"] = {"kernel.domainname": "other.test"}
    b.write()
    result = runtime.run("create", "--bundle", b, "c2")
    assert_clean_failure(result, runtime, "c2", "conflicts with the domainname field")


# -- linux.resources.network -------------------------------------------------------------------

def _mounted(controller: str) -> bool:
    return Path("/sys/fs/cgroup", controller).is_dir() and any(
        controller in line.split()[-1].split(",")
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[2] == "cgroup")


@pytest.mark.parametrize("network, field", [
    ({"classID": 1048577}, "linux.resources.network.classID"),
    ({"priorities": [{"name": "lo", "priority": 5}]}, "linux.resources.network.priorities[0]"),
])
def test_network_resources_without_their_controllers(runtime: Runtime, runc: Runc, bundle,
                                                     network: dict, field: str) -> None:
    controller = "net_cls" if "classID" in network else "net_prio"
    if _mounted(controller) or Path("/sys/fs/cgroup/cgroup.controllers").exists():
        pytest.skip(f"this test needs a cgroup v1 host without {controller} mounted")
    b = bundle()
    b.config["linux"]["resources"]["network"] = network
    b.write()
    # runc refuses it too ("cannot set net_cls limit: container could not join or create
    # cgroup"); pyruntime names the field
    assert runc.run("create", "--bundle", b, "c1").returncode == 1
    result = runtime.run("create", "--bundle", b, "c1")
    line = assert_clean_failure(result, runtime, "c1", field)
    assert f"the {controller} controller is not mounted" in line

"""The process: args, env, cwd, user and groups, umask, rlimits, capabilities, NNP."""

from __future__ import annotations

import pytest

from support import Runtime

pytestmark = pytest.mark.root

DEFAULT_CAPS = (1 << 29) | (1 << 5) | (1 << 10)  # AUDIT_WRITE, KILL, NET_BIND_SERVICE


def run_sh(runtime: Runtime, bundle, script: str, overrides=None, **kw) -> str:
    return runtime.run_bundle(bundle(["sh", "-c", script], overrides, **kw), "c1").stdout


def test_args_are_passed_verbatim(runtime: Runtime, bundle) -> None:
    b = bundle(["sh", "-c", 'for a in "$@"; do echo "[$a]"; done', "sh", "a b", "", "*", "$HOME"])
    assert runtime.run_bundle(b, "c1").stdout == "[a b]\n[]\n[*]\n[$HOME]\n"


def test_env(runtime: Runtime, bundle) -> None:
    out = run_sh(runtime, bundle, 'echo "[$FOO]" "[$EMPTY]" "[$PATH]"; env | sort',
                 env=["FOO=bar baz", "EMPTY="])
    first, *env = out.splitlines()
    assert first == "[bar baz] [] [/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin]"
    assert "TERM=xterm" in env and "FOO=bar baz" in env
    host_only = [e for e in env if e.split("=")[0] in ("PYTEST_CURRENT_TEST", "VIRTUAL_ENV")]
    assert host_only == [], "the runtime's environment leaked into the container"


def test_cwd(runtime: Runtime, bundle) -> None:
    assert run_sh(runtime, bundle, "pwd", {"process": {"cwd": "/tmp"}}) == "/tmp\n"


def test_missing_cwd_is_created_as_runc_does(runtime: Runtime, bundle) -> None:
    out = run_sh(runtime, bundle, "pwd; stat -c %a .", {"process": {"cwd": "/work/deep/er"}})
    assert out == "/work/deep/er\n755\n"


def test_missing_cwd_through_a_symlink_stays_in_the_rootfs(runtime: Runtime, bundle,
                                                            tmp_path) -> None:
    host = tmp_path / "host-dir"
    host.mkdir()
    b = bundle(["pwd"], {"process": {"cwd": "/evil/made"}})
    (b.rootfs / "evil").symlink_to(host)  # absolute: must resolve inside the rootfs
    # dangling inside the rootfs: refused with one line (runc's MkdirAll fails too)
    res = runtime.run("run", "--bundle", b, "c1")
    assert res.returncode == 1 and res.stderr.splitlines() == [
        "pyruntime: chdir: create cwd /evil/made: no such file or directory"]
    # the same path inside the rootfs: the cwd is made there, never in the host's dir
    (b.rootfs / str(host).lstrip("/")).mkdir(parents=True)
    assert runtime.run_bundle(b, "c1").stdout.strip() in ("/evil/made", f"{host}/made")
    assert not (host / "made").exists(), "the cwd was created outside the rootfs"
    assert (b.rootfs / str(host).lstrip("/") / "made").is_dir()


def test_binary_found_on_path(runtime: Runtime, bundle) -> None:
    b = bundle(["busybox", "echo", "found"])
    assert runtime.run_bundle(b, "c1").stdout == "found\n"


def test_user_and_groups(runtime: Runtime, bundle) -> None:
    user = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20]}
    out = run_sh(runtime, bundle, "id -u; id -g; id -G", {"process": {"user": user}})
    uid, gid, groups = out.splitlines()
    assert (uid, gid) == ("1000", "1001")
    assert set(groups.split()) == {"1001", "10", "20"}


def test_no_additional_gids_means_no_groups(runtime: Runtime, bundle) -> None:
    out = run_sh(runtime, bundle, "grep ^Groups: /proc/self/status",
                 {"process": {"user": {"uid": 1000, "gid": 1000}}})
    assert out.split() == ["Groups:"]


def test_umask(runtime: Runtime, bundle) -> None:
    out = run_sh(runtime, bundle, "umask; touch /tmp/f; stat -c %a /tmp/f",
                 {"process": {"user": {"uid": 0, "gid": 0, "umask": 0o077}}})
    assert out.splitlines() == ["0077", "600"]


def test_default_umask(runtime: Runtime, bundle) -> None:
    assert run_sh(runtime, bundle, "umask") == "0022\n"


def test_rlimits(runtime: Runtime, bundle) -> None:
    rlimits = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000}]
    out = run_sh(runtime, bundle, "ulimit -n; ulimit -Hn", {"process": {"rlimits": rlimits}})
    assert out.split() == ["512", "1000"]


def status_fields(text: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def test_capabilities_and_no_new_privileges(runtime: Runtime, bundle) -> None:
    status = status_fields(run_sh(runtime, bundle, "cat /proc/self/status"))
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert int(status[key], 16) == DEFAULT_CAPS, (key, status[key])
    assert int(status["CapInh"], 16) == 0  # CVE-2022-29162: never inheritable unless asked
    assert status["NoNewPrivs"] == "1"


def test_no_new_privileges_off(runtime: Runtime, bundle) -> None:
    status = status_fields(run_sh(runtime, bundle, "cat /proc/self/status",
                                  {"process": {"noNewPrivileges": False}}))
    assert status["NoNewPrivs"] == "0"


def test_non_root_user_has_no_capabilities(runtime: Runtime, bundle) -> None:
    status = status_fields(run_sh(runtime, bundle, "cat /proc/self/status",
                                  {"process": {"user": {"uid": 1000, "gid": 1000}}}))
    assert int(status["CapBnd"], 16) == DEFAULT_CAPS
    assert int(status["CapInh"], 16) == 0


def test_no_host_fds_leak(runtime: Runtime, bundle) -> None:
    out = run_sh(runtime, bundle, "ls /proc/self/fd")
    assert sorted(out.split(), key=int) == ["0", "1", "2", "3"]  # 3: ls's own directory fd


def test_oom_score_adj(runtime: Runtime, bundle) -> None:
    assert run_sh(runtime, bundle, "cat /proc/self/oom_score_adj",
                  {"process": {"oomScoreAdj": 500}}) == "500\n"

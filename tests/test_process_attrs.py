"""Process attributes seen from inside: the five capability sets, rlimits (and the error
when a hard limit cannot be raised), domainname, and their bad inputs."""

from __future__ import annotations

import resource

import pytest

from support import Runtime, assert_clean_failure

pytestmark = pytest.mark.root

CAP = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10,
       "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21, "CAP_AUDIT_WRITE": 29}


def mask(*names: str) -> int:
    return sum(1 << CAP[n] for n in names)


def status(runtime: Runtime, bundle, overrides) -> dict[str, str]:
    b = bundle(["cat", "/proc/self/status"], overrides)
    out = runtime.run_bundle(b, "c1").stdout
    return {k: v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def test_all_five_capability_sets(runtime: Runtime, bundle) -> None:
    caps = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "inheritable": ["CAP_KILL", "CAP_NET_RAW"],
        "ambient": ["CAP_KILL"],
    }
    user = {"uid": 1000, "gid": 1000}
    s = status(runtime, bundle, {"process": {"capabilities": caps, "user": user}})
    # a non-root execve of a file without file caps: P'(permitted) = P'(effective) = ambient
    assert int(s["CapBnd"], 16) == mask("CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN")
    assert int(s["CapInh"], 16) == mask("CAP_KILL", "CAP_NET_RAW")
    assert int(s["CapAmb"], 16) == mask("CAP_KILL")
    assert int(s["CapPrm"], 16) == mask("CAP_KILL")
    assert int(s["CapEff"], 16) == mask("CAP_KILL")


@pytest.mark.parametrize("nnp", [True, False])
def test_root_caps_at_execve(runtime: Runtime, bundle, nnp: bool) -> None:
    # the kernel's rule for uid 0 (no file caps): P'(permitted) = inheritable | bounding,
    # unless no_new_privs, which keeps it within the permitted set given
    caps = {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"], "permitted": ["CAP_CHOWN"],
            "effective": ["CAP_CHOWN"], "inheritable": ["CAP_NET_RAW"]}
    s = status(runtime, bundle, {"process": {"capabilities": caps, "noNewPrivileges": nnp}})
    assert s["NoNewPrivs"] == str(int(nnp))
    assert int(s["CapBnd"], 16) == mask("CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW")
    assert int(s["CapInh"], 16) == mask("CAP_NET_RAW")
    expected = ("CAP_CHOWN",) if nnp else ("CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW")
    assert int(s["CapPrm"], 16) == mask(*expected)
    assert int(s["CapAmb"], 16) == 0


def test_ambient_without_inheritable_is_left_out(runtime: Runtime, bundle) -> None:
    # runc's default spec asks for ambient caps that are not inheritable: runc drops them
    s = status(runtime, bundle, {})
    assert int(s["CapAmb"], 16) == 0 and int(s["CapInh"], 16) == 0
    assert int(s["CapEff"], 16) == mask("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")


def test_no_capabilities_field_means_no_capabilities(runtime: Runtime, bundle) -> None:
    # as in runc: a config without process.capabilities gets none, not the runtime's own
    b = bundle(["cat", "/proc/self/status"])
    del b.config["process"]["capabilities"]
    b.write()
    out = runtime.run_bundle(b, "c1").stdout
    caps = {line.split()[0]: int(line.split()[1], 16) for line in out.splitlines()
            if line.startswith("Cap")}
    assert caps == {"CapInh:": 0, "CapPrm:": 0, "CapEff:": 0, "CapBnd:": 0, "CapAmb:": 0}


def test_several_rlimits(runtime: Runtime, bundle) -> None:
    rlimits = [{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
               {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
               {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200}]
    b = bundle(["cat", "/proc/self/limits"], {"process": {"rlimits": rlimits}})
    limits = runtime.run_bundle(b, "c1").stdout
    rows = {line[:26].strip(): line[26:].split()[:2] for line in limits.splitlines()[1:]}
    assert rows["Max open files"] == ["256", "512"]
    assert rows["Max core file size"] == ["0", "4096"]
    assert rows["Max processes"] == ["100", "200"]


def test_raising_a_hard_rlimit_names_it(runtime: Runtime, bundle) -> None:
    """No CAP_SYS_RESOURCE on this host: a hard limit above ours fails with EPERM."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("RLIMIT_NOFILE is unlimited here: nothing to exceed")
    rl = [{"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard + 1}]
    b = bundle(["true"], {"process": {"rlimits": rl}})
    result = runtime.run("create", "--bundle", b, "c1")
    line = assert_clean_failure(result, runtime, "c1", ("RLIMIT_NOFILE",))
    assert "not permitted" in line.lower()


def test_domainname(runtime: Runtime, bundle) -> None:
    b = bundle(["sh", "-c", "cat /proc/sys/kernel/domainname; hostname"],
               {"domainname": "example.test", "hostname": "box"})
    assert runtime.run_bundle(b, "c1").stdout.split() == ["example.test", "box"]


@pytest.mark.parametrize("field", ["bounding", "effective", "permitted", "inheritable",
                                   "ambient"])
def test_unknown_capability_in_any_set(runtime: Runtime, bundle, field: str) -> None:
    b = bundle(["true"], {"process": {"capabilities": {field: ["CAP_NOPE"]}}})
    result = runtime.run("create", "--bundle", b, "c1")
    assert_clean_failure(result, runtime, "c1", (f"capabilities.{field}",))
    assert "CAP_NOPE" in result.stderr


def test_soft_rlimit_above_hard(runtime: Runtime, bundle) -> None:
    rl = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 10}]
    result = runtime.run("create", "--bundle", bundle(["true"], {"process": {"rlimits": rl}}),
                         "c1")
    assert_clean_failure(result, runtime, "c1", ("RLIMIT_NOFILE",))

"""CVE-2016-9962: a container process ptraces (or reads the memory of) the runtime's init
while it sets the container up, and takes its host fds and privileges.

The attack: container A is created and its init waits on the exec fifo (a fork of the
runtime, holding host fds). Container B joins A's pid namespace, where that init is pid 1,
and tries everything the CVE used: PTRACE_ATTACH, /proc/1/mem, /proc/1/environ, and
/proc/1/exe (the host binary: CVE-2019-5736 while `create` is in flight).

Defence: init (and stage1 before it) is non-dumpable from its first instruction until
execve (native/init.c, spawn.c): the kernel refuses all of these to anyone without
CAP_SYS_PTRACE over the init's mm, whose user namespace is the host's.
"""

from __future__ import annotations

import pytest

from support import Runtime

pytestmark = pytest.mark.root


def test_waiting_init_cannot_be_traced_read_or_opened(runtime: Runtime, bundle,
                                                      with_probe) -> None:
    victim = bundle(["true"], name="victim")
    runtime.create(victim, "victim")
    pid = runtime.state("victim")["pid"]
    attacker = with_probe(bundle(
        ["sh", "-c", "cat /proc/1/cmdline | head -c 40; echo; probe exe 1; probe mem 1; "
                     "probe ptrace 1; echo done"],
        {"linux": {"namespaces": [{"type": "pid", "path": f"/proc/{pid}/ns/pid"},
                                  {"type": "mount"}, {"type": "ipc"}, {"type": "uts"},
                                  {"type": "network"}]}},
        name="attacker"))
    res = runtime.run_bundle(attacker, "attacker", check=False)
    assert res.returncode == 0 and "done" in res.stdout, res.stderr
    out = res.stdout
    assert "pyruntime" in out.splitlines()[0] or "python" in out.splitlines()[0]  # it is there
    for step in ("open_path", "open_mem", "read_environ", "ptrace_attach"):
        assert f"{step}: denied errno=13" in out or f"{step}: denied errno=1" in out, out
    assert "readlink: denied" in out  # not even the host path of the binary
    assert runtime.status("victim") == "created"  # the victim never noticed
    runtime.delete("victim", force=True)

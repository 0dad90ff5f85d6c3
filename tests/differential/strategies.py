"""hypothesis strategies over the runtime-spec config's field space.

A generated config starts from what `runc spec` writes (support/config.py) and varies the
process (args, env, cwd, user, capabilities, rlimits, noNewPrivileges, oomScoreAdj),
root.readonly, hostname/domainname, mounts and their options, devices, namespaces (new,
absent, or joined by path), sysctls, hooks and small seccomp profiles.  Its process runs
the probe (probe.py), or, now and then, something that cannot run.

Host paths are placeholders the harness fills in per runtime: HOST (a directory of bind
sources shared by both runs), HOOKS (where that run's host-side hooks write) and
NS_<type> (a namespace file of a holder process both runs join).

What is never generated, and why:
- no mount namespace: both runtimes would then mount on the host;
- a sysctl or hostname in a namespace the container shares with the host, unless its value
  is the host's current one (so that a runtime that wrongly writes it changes nothing);
- process.terminal true: the harness captures stdio.
"""

from __future__ import annotations

import contextlib
import copy
import socket
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from differential.probe import probe_script
from support.config import RUNC_SPEC
from support.seccomp_profiles import DOCKER_ALLOWED

HOST = "@HOST@"
HOOKS = "@HOOKS@"


@contextlib.contextmanager
def without_local_constants() -> Iterator[None]:
    """Generate without the constants hypothesis collects from the source of every local
    module loaded (it mixes them into its draws): which modules a pytest run has imported,
    and any edit of them, would otherwise change the configs a fixed seed generates.
    A no-op on a hypothesis without that pool."""
    try:
        from hypothesis.internal.conjecture import providers
        saved = providers._get_local_constants
        cache = providers.CONSTANTS_CACHE.cache
        empty = providers.Constants()
    except (ImportError, AttributeError):
        yield
        return
    providers._get_local_constants = lambda: empty
    cache.clear()  # the pools of earlier tests, per choice type
    try:
        yield
    finally:
        providers._get_local_constants = saved
        cache.clear()


def ns_path(kind: str) -> str:
    return f"@NS_{kind}@"


CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP",
        "CAP_SYS_ADMIN", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE",
        "CAP_SYS_PTRACE", "CAP_BPF", "CAP_PERFMON", "CAP_CHECKPOINT_RESTORE"]
UNKNOWN_CAPS = ["CAP_FUZZ", "cap_chown"]
RLIMITS = ["RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE", "RLIMIT_STACK", "RLIMIT_CPU",
           "RLIMIT_FSIZE", "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
           "RLIMIT_RTPRIO", "RLIMIT_SIGPENDING", "RLIMIT_AS", "RLIMIT_LOCKS"]
# Low CPU and file-size limits make the outcome depend on timing, or on how the runtime
# passes stdout (runc's foreground `run` copies through a pipe; pyruntime hands the file
# itself to the container); a low address-space limit only makes busybox crash, and at
# 1 GiB runc's own (Go) init sometimes fails to allocate its seccomp rules, by chance of
# its memory layout: these are generated only high (RLIMIT_AS: far above 1 GiB).
HIGH_ONLY_RLIMITS = ("RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_AS")
HIGH_SOFT = {"RLIMIT_AS": 1 << 36}  # else 1 GiB
RLIMIT_VALUES = [0, 1, 64, 1024, 4096, 16384, 1048576, 2**64 - 1]
IDS = [0, 1, 1000, 65534]
# rootfs extras (harness.py): /existing-0700 (a 0700 dir), /link-mnt -> /mnt,
# /link-missing -> /missing/target, /etc/passwd with a user 1000
MOUNT_DESTS = ["/mnt", "/mnt/a", "/newdir", "/newdir/deep/er", "/tmp", "/existing-0700",
               "/link-mnt", "/dev/fz", "/root", "/home/user"]
RARE_MOUNT_DESTS = ["/link-missing", "/etc/hostname", "/proc/fz", "/sys/fz", "relative/dest"]
FLAG_OPTIONS = ["ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "noatime",
                "nodiratime", "relatime", "strictatime", "sync", "dirsync"]
PROPAGATION = ["private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable",
               "runbindable"]
RECURSIVE = ["rro", "rrw", "rnosuid", "rnodev", "rnoexec", "rnoatime", "rrelatime"]
TMPFS_DATA = ["mode=0700", "mode=1777", "mode=755", "size=1m", "nr_inodes=100", "uid=1000",
              "gid=1000", "tmpcopyup"]
BIND_DIRS = [f"{HOST}/data", f"{HOST}/tree"]
RARE_BIND_SOURCES = [f"{HOST}/file", f"{HOST}/missing"]
DEVICE_PATHS = ["/dev/fz0", "/dev/fzdir/fz1", "/dev/null"]
RARE_DEVICE_PATHS = ["/fz-outside", "/tmp/fzdev"]
DEVICE_NUMBERS = [("c", 1, 3), ("c", 1, 5), ("c", 10, 229), ("b", 7, 0), ("p", 0, 0)]


def _read_host(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


# sysctl -> (namespace it belongs to, values to try)
SYSCTLS: dict[str, tuple[str | None, list[str]]] = {
    "net.ipv4.ip_forward": ("network", ["0", "1", "x"]),
    "net.core.somaxconn": ("network", ["128", "4096"]),
    "kernel.shmmni": ("ipc", ["999", "4096"]),
    "kernel.msgmax": ("ipc", ["10000"]),
    "fs.mqueue.queues_max": ("ipc", ["100"]),
    "kernel.domainname": ("uts", ["fz.domain"]),
}
RARE_SYSCTLS = {"kernel.hostname": ("uts", ["fz-sysctl-host"]),
                "net.ipv4.fuzz_nonexistent": ("network", ["1"])}
SYSCTLS_NOT_NAMESPACED = ["vm.swappiness"]  # only ever the host's own value
SECCOMP_TOUCHY = ["close_range", "fcntl", "capget", "capset", "prctl", "setgroups",
                  "setresuid", "setresgid", "getdents64", "newfstatat", "openat", "execve",
                  "dup3", "setsid", "umask", "chdir", "rt_sigaction"]
SECCOMP_DENIABLE = ["mkdir", "mkdirat", "chmod", "fchmodat", "uname", "chown", "fchownat",
                    "mknod", "mknodat", "unshare", "sethostname", "close_range", "getpid",
                    "fuzz_nosuch_syscall"]


def sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def host_sysctl(key: str) -> str | None:
    try:
        return _read_host(sysctl_path(key))
    except OSError:
        return None


def _rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in *one_in* draws.  Never on hypothesis's simplest value (0), which
    it draws far more often than its share (and shrinks towards): the simplest config is
    the plain one."""
    return draw(st.integers(0, one_in - 1)) == 1


def _pick(common: list[Any], rare: list[Any], one_in: int = 8) -> st.SearchStrategy[Any]:
    """Mostly one of *common*, about once in *one_in* one of *rare*."""
    return st.integers(0, one_in - 1).flatmap(
        lambda i: st.sampled_from(rare if i == 1 and rare else common))


def _subset(pool: list[Any], max_size: int | None = None) -> st.SearchStrategy[list[Any]]:
    if not pool:
        return st.just([])
    return st.lists(st.sampled_from(pool), unique=True, max_size=max_size or len(pool))


@st.composite
def capabilities(draw: st.DrawFn) -> dict[str, list[str]] | None:
    """Mostly sets the kernel accepts (effective and ambient within permitted, permitted
    within bounding, ambient within inheritable); now and then any sets at all."""
    if _rarely(draw, 10):
        return None
    pool = CAPS + (UNKNOWN_CAPS if _rarely(draw, 15) else [])
    if _rarely(draw, 8):
        return {kind: draw(_subset(pool, 6)) for kind in
                draw(_subset(["bounding", "effective", "permitted", "inheritable", "ambient"]))}
    permitted = draw(_subset(pool, 6))
    bounding = sorted(set(permitted) | set(draw(_subset(pool, 3))))
    inheritable = draw(_subset(bounding, 4))
    out = {"bounding": bounding, "permitted": permitted,
           "effective": draw(_subset(permitted)),
           "inheritable": inheritable,
           "ambient": draw(_subset(sorted(set(permitted) & set(inheritable))))}
    for kind in draw(_subset(["effective", "inheritable", "ambient"], 2)):
        del out[kind]
    return out


def _host_hard(kind: str) -> int:
    """This host's hard limit (raising it needs CAP_SYS_RESOURCE, which may be missing)."""
    import resource

    try:
        hard = resource.getrlimit(getattr(resource, kind))[1]
    except (AttributeError, ValueError):
        return 1024
    return 2**64 - 1 if hard == resource.RLIM_INFINITY else hard


@st.composite
def rlimits(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Mostly limits the runtime may set (hard at most the host's); now and then not."""
    out = []
    if draw(st.booleans()):
        out.append({"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024})
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(_pick(RLIMITS, ["RLIMIT_FUZZ"], 40))
        host = _host_hard(kind)
        if kind in HIGH_ONLY_RLIMITS:
            hard = host
        else:
            hard = draw(_pick(sorted({min(host, v) for v in (1024, 4096, 16384, host)}),
                              [0, 1, 64, 1048576, 2**64 - 1], 25))
        if kind in HIGH_ONLY_RLIMITS:
            soft = draw(st.sampled_from([hard, min(hard, HIGH_SOFT.get(kind, 1 << 30))]))
        elif _rarely(draw, 40):
            soft = draw(st.sampled_from(RLIMIT_VALUES))  # may exceed hard
        else:
            soft = draw(st.sampled_from(sorted({v for v in RLIMIT_VALUES if v <= hard}
                                               | {hard})))
        out.append({"type": kind, "hard": hard, "soft": soft})
    return out


ENV_NAMES = ["FOO", "HOME", "PATH", "LANG", "EMPTY", "A_B", "lower"]
TEXT = st.text(st.sampled_from("abc XYZ019_-=./:$'\"\\é日"), max_size=8)


@st.composite
def env(draw: st.DrawFn) -> list[str]:
    out = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]
    if _rarely(draw, 25):
        out = out[1:]  # no PATH at all
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(ENV_NAMES))
        if name == "PATH":
            out.append("PATH=" + draw(_pick(["/bin", "/nowhere:/bin", "/usr/bin:/bin"],
                                            ["/nowhere", ""], 6)))
        else:
            out.append(f"{name}={draw(TEXT)}")
    if _rarely(draw, 30):
        out.append("NOEQUALS")
    return out


@st.composite
def user(draw: st.DrawFn) -> dict[str, Any]:
    u: dict[str, Any] = {"uid": draw(st.sampled_from(IDS)), "gid": draw(st.sampled_from(IDS))}
    if draw(st.booleans()):
        u["additionalGids"] = draw(_subset([0, 5, 10, 1000, 65534], 3))
    if draw(st.booleans()):
        u["umask"] = draw(_pick([0, 0o22, 0o27, 0o77, 0o777], [0o1000], 15))
    return u


@st.composite
def mount(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(_pick(["tmpfs", "tmpfs", "bind", "bind", "bind"], ["proc", "sysfs", "mqueue"], 4))
    dest = draw(_pick(MOUNT_DESTS, RARE_MOUNT_DESTS, 20))
    flags = draw(_subset(FLAG_OPTIONS, 3)) + draw(_subset(PROPAGATION, 1))
    flags += draw(_subset(RECURSIVE, 2)) if draw(st.booleans()) else []
    if kind == "tmpfs":
        options = flags + draw(_subset(TMPFS_DATA, 2))
        if _rarely(draw, 20):
            options.append("fuzz-bogus-option")
        m = {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options}
    elif kind == "bind":
        options = [draw(st.sampled_from(["bind", "rbind", "rbind", "bind"]))] + flags
        m = {"destination": dest, "source": draw(_pick(BIND_DIRS, RARE_BIND_SOURCES, 10)),
             "options": options}
        if draw(st.booleans()):
            m["type"] = "bind"
    else:
        m = {"destination": dest, "type": kind, "source": kind, "options": flags}
    if not m["options"] and draw(st.booleans()):
        del m["options"]
    return m


@st.composite
def devices(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(0, 2))):
        kind, major, minor = draw(st.sampled_from(DEVICE_NUMBERS))
        d: dict[str, Any] = {"path": draw(_pick(DEVICE_PATHS, RARE_DEVICE_PATHS, 6)),
                             "type": kind}
        if kind != "p":
            d.update(major=major, minor=minor)
        if draw(st.booleans()):
            d["fileMode"] = draw(st.sampled_from([0o600, 0o666, 0o640, 0o7777]))
        if draw(st.booleans()):
            d["uid"] = draw(st.sampled_from(IDS))
            d["gid"] = draw(st.sampled_from(IDS))
        out.append(d)
    return out


ID_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


@st.composite
def namespaces(draw: st.DrawFn) -> list[dict[str, str]]:
    """A new mount namespace always; the others new, absent, or joined by path.  With a
    new user namespace, mostly all new (proc and sysfs cannot be mounted for a pid or
    network namespace the new user namespace does not own)."""
    out = [{"type": "mount"}]
    user = _rarely(draw, 6)
    if user:
        out.append({"type": "user"})
    for kind in ("pid", "network", "ipc", "uts"):
        if user and not _rarely(draw, 10):
            how = "new"
        else:
            how = draw(st.sampled_from(["new", "new", "new", "absent", "join"]))
        if how == "new":
            out.append({"type": kind})
        elif how == "join":
            out.append({"type": kind, "path": ns_path(kind)})
    if _rarely(draw, 4):
        out.append({"type": "cgroup"})
    return draw(st.permutations(out))


def _ns_kinds(config: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {ns["type"]: ns for ns in config["linux"]["namespaces"]}


@st.composite
def sysctls(draw: st.DrawFn, config: dict[str, Any]) -> dict[str, str]:
    own = _ns_kinds(config)
    out = {}
    keys = draw(_subset(sorted(SYSCTLS), 3))
    if _rarely(draw, 15):
        keys.append(draw(st.sampled_from(sorted(RARE_SYSCTLS))))
    if _rarely(draw, 25):
        keys += SYSCTLS_NOT_NAMESPACED
    for key in keys:
        if key in SYSCTLS_NOT_NAMESPACED:
            current = host_sysctl(key)
            if current is not None:
                out[key] = current
            continue
        ns, values = SYSCTLS.get(key) or RARE_SYSCTLS[key]
        if ns in own:
            out[key] = draw(st.sampled_from(values))
        elif _rarely(draw, 4):
            current = host_sysctl(key)
            if current is not None:
                out[key] = current  # shared with the host: only its own value, harmless
    return out


def _hook(draw: st.DrawFn, kind: str, i: int) -> dict[str, Any]:
    code = 1 if _rarely(draw, 8) else 0
    if kind in ("createContainer", "startContainer"):
        # runs in the container: the busybox rootfs's sh; writes into its /tmp
        script = f"env | sort > /tmp/hook-{kind}-{i}.env 2>/dev/null; exit {code}"
    else:
        script = (f"env | grep -v -e '^_=' | sort > {HOOKS}/{kind}-{i}.env; "
                  f"cat > {HOOKS}/{kind}-{i}.state; exit {code}")
    path = "/nosuch-hook" if _rarely(draw, 15) else "/bin/sh"
    hook: dict[str, Any] = {"path": path, "args": ["sh", "-c", script]}
    if draw(st.booleans()):
        hook["env"] = draw(st.sampled_from([["FZ_HOOK=1"], ["PATH=/bin:/usr/bin", "A=b"], []]))
    if _rarely(draw, 4):
        hook["timeout"] = 30
    return hook


@st.composite
def hooks(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for kind in draw(_subset(["prestart", "createRuntime", "createContainer",
                              "startContainer", "poststart", "poststop"], 3)):
        out[kind] = [_hook(draw, kind, i) for i in range(draw(st.integers(1, 2)))]
    return out


@st.composite
def seccomp(draw: st.DrawFn) -> dict[str, Any]:
    profile: dict[str, Any]
    if draw(st.booleans()):
        denied = draw(_subset(SECCOMP_DENIABLE, 3).filter(bool))
        rule: dict[str, Any] = {"names": denied,
                                "action": draw(st.sampled_from(["SCMP_ACT_ERRNO",
                                                                "SCMP_ACT_ERRNO",
                                                                "SCMP_ACT_KILL",
                                                                "SCMP_ACT_TRAP"]))}
        if rule["action"] == "SCMP_ACT_ERRNO" and draw(st.booleans()):
            rule["errnoRet"] = draw(st.sampled_from([1, 13, 38]))
        profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
    else:
        left_out = set(draw(_subset(SECCOMP_TOUCHY, 2)))
        profile = {"defaultAction": "SCMP_ACT_ERRNO",
                   "syscalls": [{"names": [n for n in DOCKER_ALLOWED if n not in left_out],
                                 "action": "SCMP_ACT_ALLOW"}]}
        if draw(st.booleans()):
            profile["defaultErrnoRet"] = draw(st.sampled_from([1, 38]))
    if draw(st.booleans()):
        profile["architectures"] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    if _rarely(draw, 20):
        profile["flags"] = [draw(st.sampled_from(["SECCOMP_FILTER_FLAG_LOG",
                                                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]))]
    return profile


# argv prefixes that run the probe, and programs that cannot run
PROBE_ARGV0 = [["sh", "-c"], ["/bin/sh", "-c"], ["busybox", "sh", "-c"], ["/bin/../bin/sh", "-c"]]
BROKEN_ARGS = [["/nosuch"], ["nosuch"], ["/etc/passwd"], ["/tmp"], ["./sh"], [""]]


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    """A config.json (with placeholders) whose process runs the probe, mostly."""
    c = copy.deepcopy(RUNC_SPEC)
    p = c["process"]
    p["terminal"] = False
    p["env"] = draw(env())
    p["cwd"] = draw(_pick(["/", "/", "/tmp", "/root", "/mnt", "/link-mnt", "/nonexistent/dir"],
                          ["/etc/passwd", "relative"], 30))
    if draw(st.integers(0, 2)):
        p["user"] = draw(user())
    caps = draw(capabilities())
    if caps is None:
        del p["capabilities"]
    else:
        p["capabilities"] = caps
    p["rlimits"] = draw(rlimits())
    nnp = draw(st.sampled_from([True, False, None]))
    if nnp is None:
        del p["noNewPrivileges"]
    else:
        p["noNewPrivileges"] = nnp
    if _rarely(draw, 4):
        p["oomScoreAdj"] = draw(_pick([0, 1, 500, 1000], [-1000, -1, 1001], 6))
    c["root"]["readonly"] = _rarely(draw, 4)
    linux = c["linux"]
    linux["namespaces"] = draw(namespaces())
    kinds = _ns_kinds(c)
    if "user" in kinds:
        linux["uidMappings"] = copy.deepcopy(ID_MAP)
        linux["gidMappings"] = copy.deepcopy(ID_MAP)
        c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    host_name = socket.gethostname()
    if "uts" in kinds:
        c["hostname"] = draw(_pick(["fz-host", "", "h" * 64, "runc"], ["h" * 65], 15))
        if _rarely(draw, 4):
            c["domainname"] = draw(st.sampled_from(["fz.domain", ""]))
    elif _rarely(draw, 12):
        c["hostname"] = host_name  # shared with the host: only its own name (refused)
    else:
        del c["hostname"]
    if _rarely(draw, 5):
        c["mounts"] = [m for m in c["mounts"]
                       if m["destination"] not in draw(_subset(["/dev/shm", "/dev/mqueue",
                                                                "/dev/pts", "/sys/fs/cgroup",
                                                                "/dev"], 2))]
    c["mounts"] += draw(st.lists(mount(), max_size=3))
    devs = draw(devices())
    if devs:
        linux["devices"] = devs
    if _rarely(draw, 4):
        linux["resources"]["devices"].append({"allow": True, "access": "rwm"})
    if draw(st.booleans()):
        linux["sysctl"] = draw(sysctls(c))
    if _rarely(draw, 4):
        c["hooks"] = draw(hooks())
    if _rarely(draw, 4):
        linux["seccomp"] = draw(seccomp())
    if _rarely(draw, 50):
        field = draw(st.sampled_from(["apparmorProfile", "selinuxLabel", "mountLabel"]))
        value = "unconfined" if field == "apparmorProfile" else "system_u:system_r:fz_t:s0"
        (linux if field == "mountLabel" else p)[field] = value
    if _rarely(draw, 15):
        linux["maskedPaths"] = linux["maskedPaths"] + ["/etc/hostname", "/nosuch"]
        linux["readonlyPaths"] = linux["readonlyPaths"] + ["/tmp"]
    if not _rarely(draw, 30):
        extra = draw(st.lists(TEXT, max_size=2))
        code = draw(st.sampled_from([0, 0, 0, 1, 3, 255]))
        p["args"] = [*draw(st.sampled_from(PROBE_ARGV0)), probe_script(c, code), "probe", *extra]
    else:
        p["args"] = list(draw(st.sampled_from(BROKEN_ARGS)))
    return c

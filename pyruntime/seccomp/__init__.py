"""Seccomp filters: compile once per machine, load in every container.

profile.py turns linux.seccomp into the compile input (pure Python); this module compiles
it with libseccomp (native/seccomp.c) into BPF bytes and keeps them in a machine-wide cache,
so the usual default profile is compiled once per machine, not once per container. The
init loads the bytes with seccomp(2) (native/seccomp_load.c).

Cache: ``$PYRUNTIME_SECCOMP_CACHE`` or ``/var/cache/pyruntime/seccomp``, one file per filter
named by the sha256 of the compile input, libseccomp's version, the kernel's seccomp API
level (libseccomp shapes actions by it) and the machine. The directory must belong to us
and be writable by nobody else: a cached filter is trusted as is. A file that is not ours
or not well-formed is ignored and recompiled.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

from pyruntime.errors import Failure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyruntime.seccomp.profile import Profile

CACHE_ENV = "PYRUNTIME_SECCOMP_CACHE"
DEFAULT_CACHE = "/var/cache/pyruntime/seccomp"
MAGIC = b"pyrt-seccomp-bpf 1\n"
INSTRUCTION = 8  # sizeof(struct sock_filter)
MAX_INSTRUCTIONS = 4096  # BPF_MAXINSNS
PID_MARK = "\0pid\0"


def cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or DEFAULT_CACHE


def libseccomp_version() -> tuple[str, int]:
    """("2.5.4", api level)."""
    from pyruntime._native import ffi, lib

    v = ffi.new("uint32_t[4]")
    lib.pyrt_seccomp_version(v)
    return f"{v[0]}.{v[1]}.{v[2]}", int(v[3])


def cache_key(prof: Profile) -> str:
    version, api = libseccomp_version()
    material = {
        "format": MAGIC.decode().strip(),
        "libseccomp": version,
        "api": api,
        "machine": os.uname().machine,
        "profile": prof.compile_key(),
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def compile_bpf(prof: Profile) -> tuple[bytes, list[str]]:
    """Compile with libseccomp; returns the BPF and the config.json paths of skipped names."""
    from pyruntime._native import ffi, lib

    keep: list = []

    def s(value: str):
        buf = ffi.new("char[]", value.encode())
        keep.append(buf)
        return buf

    c = ffi.new("struct pyrt_seccomp_profile *")
    c.default_action = prof.default_action
    archs = ffi.new("const char *[]", [s(a) for a in prof.archs] or 1)
    c.archs, c.n_archs = archs, len(prof.archs)
    n = len(prof.rules)
    rules = ffi.new("struct pyrt_seccomp_rule[]", max(n, 1))
    for i, r in enumerate(prof.rules):
        rules[i].name = s(r.name)
        rules[i].action = r.action
        if r.args:
            args = ffi.new("struct pyrt_seccomp_arg[]", len(r.args))
            keep.append(args)
            for j, (index, op, value, value_two) in enumerate(r.args):
                args[j].index, args[j].op = index, op
                args[j].value, args[j].value_two = value, value_two
            rules[i].args, rules[i].n_args = args, len(r.args)
    c.rules, c.n_rules = rules, n
    c.optimize = int(prof.optimize)
    unknown = ffi.new("int32_t[]", max(n, 1))
    c.unknown = unknown
    res = ffi.new("struct pyrt_seccomp_result *")
    fd = os.memfd_create("pyrt-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.pyrt_seccomp_compile(c, fd, res)
        if rc < 0:
            what = ffi.string(res.what).decode(errors="replace")
            where = prof.rules[res.rule].where if 0 <= res.rule < n else ""
            raise Failure(f"config.json: linux.seccomp{where}: libseccomp: {what}: "
                          f"{os.strerror(-rc)}")
        size = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, 0, os.SEEK_SET)
        bpf = b""
        while len(bpf) < size:
            chunk = os.read(fd, size - len(bpf))
            if not chunk:
                break
            bpf += chunk
    finally:
        os.close(fd)
    skipped = [f"{prof.rules[i].where} {prof.rules[i].name}" for i in range(n) if unknown[i]]
    _check_program(bpf)
    return bpf, sorted(set(skipped))


def _check_program(bpf: bytes) -> None:
    count = len(bpf) // INSTRUCTION
    if not bpf or len(bpf) % INSTRUCTION:
        raise Failure(f"linux.seccomp: the compiled filter is {len(bpf)} bytes, not whole "
                      "BPF instructions")
    if count > MAX_INSTRUCTIONS:
        raise Failure(f"config.json: linux.seccomp: the filter needs {count} BPF instructions; "
                      f"the kernel takes at most {MAX_INSTRUCTIONS}")


def _trusted_dir(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _read_cached(path: str) -> tuple[bytes, list[str]] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or st.st_size > 1 << 20:
            return None
        data = os.read(fd, st.st_size)
    finally:
        os.close(fd)
    if not data.startswith(MAGIC):
        return None
    meta_end = data.find(b"\n", len(MAGIC))
    if meta_end < 0:
        return None
    try:
        meta = json.loads(data[len(MAGIC):meta_end])
    except ValueError:
        return None
    bpf = data[meta_end + 1:]
    if len(bpf) != meta.get("bytes") or hashlib.sha256(bpf).hexdigest() != meta.get("sha256"):
        return None
    return bpf, list(meta.get("skipped", []))


def _write_cached(directory: str, path: str, bpf: bytes, skipped: list[str]) -> None:
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if not _trusted_dir(directory):
        raise PermissionError(f"{directory} is not ours alone")
    meta = json.dumps({"bytes": len(bpf), "sha256": hashlib.sha256(bpf).hexdigest(),
                       "skipped": skipped}, separators=(",", ":"))
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, MAGIC + meta.encode() + b"\n" + bpf)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def filter_for(prof: Profile, debug: Callable[[str], None] | None = None,
               warn: Callable[[str], None] | None = None) -> bytes:
    """The BPF program for `prof`: from the cache, or compiled now and cached."""
    debug = debug or (lambda _msg: None)
    t0 = time.perf_counter()
    key = cache_key(prof)
    directory = cache_dir()
    path = os.path.join(directory, key + ".bpf")
    cached = _read_cached(path) if _trusted_dir(directory) else None
    if cached is not None:
        bpf, skipped = cached
        debug(f"seccomp: filter {key[:16]} loaded from cache {path} "
              f"({len(bpf) // INSTRUCTION} instructions, "
              f"{(time.perf_counter() - t0) * 1000:.2f} ms); compilation skipped")
    else:
        bpf, skipped = compile_bpf(prof)
        took = (time.perf_counter() - t0) * 1000
        try:
            _write_cached(directory, path, bpf, skipped)
            where = f"cached at {path}"
        except OSError as e:
            where = f"not cached ({directory}: {e.strerror or e})"
        debug(f"seccomp: filter {key[:16]} compiled ({len(prof.rules)} rules, "
              f"{len(bpf) // INSTRUCTION} instructions, {took:.2f} ms); {where}")
    if skipped and warn is not None:
        version, _ = libseccomp_version()
        warn(f"seccomp: {len(skipped)} syscall name(s) unknown to libseccomp {version} on "
             f"{os.uname().machine} skipped: " + ", ".join(skipped))
    return bpf


def state_pieces(prof: Profile, oci_version: str, container_id: str, bundle: str,
                 annotations: dict[str, str]) -> list[str]:
    """The container process state JSON sent with the listener fd, split where the init's
    pid goes (native/api.h: seccomp_state)."""
    state = {"ociVersion": oci_version, "id": container_id, "status": "creating",
             "pid": PID_MARK, "bundle": bundle}
    if annotations:
        state["annotations"] = annotations
    doc: dict = {"ociVersion": oci_version, "fds": ["seccompFd"], "pid": PID_MARK}
    if prof.listener_metadata:
        doc["metadata"] = prof.listener_metadata
    doc["state"] = state
    mark = json.dumps(PID_MARK)
    pieces = json.dumps(doc, separators=(",", ":")).split(mark)
    if len(pieces) != 3:
        raise Failure("linux.seccomp: cannot build the container process state "
                      "(an annotation holds the pid placeholder)")
    return pieces


def attach(plan, prof: Profile | None, *, container_id: str, bundle: str,
           oci_version: str, annotations: dict[str, str],
           debug: Callable[[str], None] | None = None,
           warn: Callable[[str], None] | None = None) -> None:
    """Compile (or fetch) `prof` and put what the init loads into `plan`."""
    if prof is None:
        return
    if prof.dropped_flags and debug is not None:
        debug("seccomp: without SCMP_ACT_NOTIFY these flags mean nothing and are left out: "
              + ", ".join(prof.dropped_flags))
    plan.seccomp_bpf = filter_for(prof, debug, warn)
    plan.seccomp_flags = prof.flags
    if prof.notify:
        plan.seccomp_listener = prof.listener_path
        plan.seccomp_state = state_pieces(prof, oci_version, container_id, bundle, annotations)

"""`pyruntime serve`: listen on a socket, a forked worker per client connection.

Everything a verb could import is imported here, once (gc.freeze() keeps those objects'
pages shared with the workers).  Workers are forked ahead (SPARES of them wait in
accept()), so a call pays neither the interpreter's start nor a fork.  Only the server's
own user is served (SO_PEERCRED); the socket is made mode 0600.  SIGTERM or SIGINT stop
the server, its idle spares and the socket; calls in flight finish on their own.
"""

from __future__ import annotations

import gc
import os
import pkgutil
import signal
import socket
import struct
import sys

import pyruntime
from pyruntime.errors import Failure

# pyruntime.api.*: no verb imports them (and its pytest plugin imports pytest)
SKIP = ("pyruntime.__main__", "pyruntime.cli.launcher", "pyruntime.api.")


def preload() -> list[str]:
    """Import every pyruntime module (a verb's lazy imports included).  Returns the
    names that failed to import (an optional extra that is missing)."""
    failed = []
    for info in pkgutil.walk_packages(pyruntime.__path__, "pyruntime."):
        if info.name.startswith(SKIP):
            continue
        try:
            __import__(info.name)
        except Exception:  # noqa: BLE001 - e.g. pyroute2 absent: netdev stays lazy
            failed.append(info.name)
    import click  # noqa: F401 - help and usage errors
    return failed


def warm() -> None:
    """Fill the caches the first call of a process would fill: the spec records' schemas
    (~3 ms of a first config.json) and the C types the plan is built from."""
    from pyruntime._native import ffi
    from pyruntime.spec.record import Record

    todo = [Record]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls is not Record:
            cls._schema()
    for ctype in ("char[]", "const char *[]", "struct pyrt_plan *", "uint32_t[]", "uint8_t[]",
                  "void *", "uintptr_t", "struct pyrt_ns_join[]", "struct pyrt_mount[]",
                  "struct pyrt_device[]", "struct pyrt_symlink[]", "struct pyrt_hook[]",
                  "struct pyrt_sysctl[]", "struct pyrt_rlimit[]"):
        ffi.typeof(ctype)


def _listen(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(path)
    except FileNotFoundError:
        pass
    except ConnectionRefusedError:
        os.unlink(path)  # a stale socket: its server is gone
    else:
        raise Failure(f"serve: {path}: another pyruntime serve is listening there")
    finally:
        probe.close()
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(128)
    return sock


def _peer(conn: socket.socket) -> tuple[int, int]:
    pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                        struct.calcsize("3i")))
    return pid, uid


SPARES = 2  # workers forked ahead, waiting in accept(): a call does not wait for a fork


def serve(path: str, ready: object = None) -> int:
    """Serve until SIGTERM/SIGINT.  `ready()` is called once the socket accepts."""
    failed = preload()
    warm()
    sock = _listen(path)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    taken_r, taken_w = os.pipe()  # a spare writes its pid here when it takes a call
    spares: set[int] = set()

    def stop(_sig: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    gc.collect()
    gc.freeze()  # keep the preloaded objects' pages shared with the workers
    server_pid = os.getpid()
    try:
        if failed:
            print(f"pyruntime serve: not preloaded: {', '.join(failed)}", file=sys.stderr)
        while True:
            while len(spares) < SPARES:
                pid = os.fork()
                if pid == 0:
                    os.close(taken_r)
                    _spare(sock, taken_w, server_pid)  # never returns
                spares.add(pid)
            if ready is not None:
                ready()
                ready = None
            data = os.read(taken_r, 4 * SPARES)
            for (pid,) in struct.iter_unpack("i", data[:len(data) // 4 * 4]):
                spares.discard(pid)
    finally:
        for pid in spares:  # waiting in accept(): no call in flight
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        sock.close()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _spare(sock: socket.socket, taken_w: int, server_pid: int) -> None:
    """A forked worker: wait for a call (dying with the server meanwhile), tell the server
    to fork the next spare, serve the call."""
    from pyruntime._native import lib
    from pyruntime.served import worker

    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if lib.pyrt_parent_death_signal(signal.SIGTERM, server_pid) < 0:
            os._exit(0)
        gc.disable()  # a short life: collections would only dirty shared pages
        euid = os.geteuid()
        while True:
            conn, _ = sock.accept()
            pid, uid = _peer(conn)
            if uid == euid:
                break
            conn.close()
        lib.pyrt_parent_death_signal(0, 0)  # a call in flight finishes on its own
        os.write(taken_w, struct.pack("i", os.getpid()))
        sock.close()
        os.close(taken_w)
        worker.run(conn, pid)
    finally:  # never back into the server's loop (worker.run exits on its own)
        os._exit(1)

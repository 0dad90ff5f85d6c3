"""`pyruntime serve`: listen on a socket, a forked worker per client connection.

Everything a verb could import is imported here, once (gc.freeze() keeps those objects'
pages shared with the workers).  Workers are forked ahead (SPARES of them wait in
accept()), so a call pays neither the interpreter's start nor a fork; a spare that dies
waiting (SIGKILL, the OOM killer) is replaced, or calls would queue in the backlog with
nobody to accept them.  Only the server's own user is served (SO_PEERCRED), and of it
only callers with the server's privileges (admission.py); the socket is made mode 0600,
and --socket never replaces anything but a stale socket.  SIGTERM or SIGINT stop the
server, its idle spares and the socket; calls in flight finish on their own.
"""

from __future__ import annotations

import gc
import os
import pkgutil
import select
import signal
import socket
import stat
import struct
import sys
import time

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
        except Exception:  # e.g. pyroute2 absent: netdev stays lazy
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
                  "struct pyrt_sysctl[]", "struct pyrt_rlimit[]", "struct pyrt_hook *",
                  "struct pyrt_hook_result *"):
        ffi.typeof(ctype)


def _listen(path: str) -> socket.socket:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):  # never remove what is not ours to remove
            raise Failure(f"serve: {path}: exists and is not a socket")
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
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
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


class Spares:
    """The spare workers: forked ahead, forgotten when they take a call (they say so on a
    pipe), and replaced when they die without one (SIGKILL, the OOM killer).  Workers are
    the server's children and reaped here, so their deaths wake the server."""

    def __init__(self, sock: socket.socket, own: object) -> None:
        self.sock = sock
        self.own = own
        self.pids: set[int] = set()
        self.taken_r, self.taken_w = os.pipe()  # a spare writes its pid when it takes a call
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.server_pid = os.getpid()
        self.idle_deaths = 0  # spares dead in a row without taking a call

    def start(self) -> None:
        signal.set_wakeup_fd(self.wake_w)  # SIGCHLD ends the wait in wait()
        signal.signal(signal.SIGCHLD, lambda _sig, _frame: None)

    def fill(self) -> None:
        while len(self.pids) < SPARES:
            if self.idle_deaths:  # spares that die at once: do not fork in a tight loop
                time.sleep(min(0.01 * 2 ** self.idle_deaths, 1.0))
            pid = os.fork()
            if pid == 0:
                _spare(self)  # never returns
            self.pids.add(pid)

    def wait(self) -> None:
        """Until a spare takes a call or a child dies; then account for both."""
        p = select.poll()
        p.register(self.taken_r, select.POLLIN)
        p.register(self.wake_r, select.POLLIN)
        p.poll()
        try:
            os.read(self.wake_r, 512)
        except BlockingIOError:
            pass
        ready = select.poll()
        ready.register(self.taken_r, select.POLLIN)
        if ready.poll(0):
            data = os.read(self.taken_r, 4 * SPARES)
            for (pid,) in struct.iter_unpack("i", data[:len(data) // 4 * 4]):
                self.pids.discard(pid)
                self.idle_deaths = 0
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in self.pids:  # died waiting for a call (or before it said so)
                self.pids.discard(pid)
                self.idle_deaths += 1

    def stop(self) -> None:
        for pid in self.pids:  # waiting in accept(): no call in flight
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def serve(path: str, ready: object = None) -> int:
    """Serve until SIGTERM/SIGINT.  `ready()` is called once the socket accepts."""
    from pyruntime.served import admission
    from pyruntime.served.buildid import build_id
    from pyruntime.served.worker import Own

    failed = preload()
    warm()
    own = Own(build_id(), admission.profile("/proc/self"))
    sock = _listen(path)
    spares = Spares(sock, own)

    def stop(_sig: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    gc.collect()
    gc.freeze()  # keep the preloaded objects' pages shared with the workers
    try:
        spares.start()
        if failed:
            print(f"pyruntime serve: not preloaded: {', '.join(failed)}", file=sys.stderr)
        while True:
            spares.fill()
            if ready is not None:
                ready()
                ready = None
            spares.wait()
    finally:
        spares.stop()
        sock.close()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _spare(spares: Spares) -> None:
    """A forked worker: wait for a call (dying with the server meanwhile), tell the server
    to fork the next spare, serve the call."""
    from pyruntime._native import lib
    from pyruntime.served import admission, worker

    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.close(spares.wake_r)
        os.close(spares.wake_w)
        os.close(spares.taken_r)
        if lib.pyrt_parent_death_signal(signal.SIGTERM, spares.server_pid) < 0:
            os._exit(0)
        gc.disable()  # a short life: collections would only dirty shared pages
        euid = os.geteuid()
        sock = spares.sock
        while True:
            conn, _ = sock.accept()
            pid, uid = _peer(conn)
            if uid == euid:
                break
            conn.close()
        lib.pyrt_parent_death_signal(0, 0)  # a call in flight finishes on its own
        os.write(spares.taken_w, struct.pack("i", os.getpid()))
        pidfd = admission.peer_pidfd(conn, pid)
        sock.close()
        os.close(spares.taken_w)
        worker.run(conn, pid, pidfd, spares.own)
    finally:  # never back into the server's loop (worker.run exits on its own)
        os._exit(1)

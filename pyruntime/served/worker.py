"""One call of the `pyruntime` client, run in a fork of the server.

It first decides whether to serve the call at all: the client's build id must be the
server's, and the caller the server's equal (pyruntime/served/admission.py); else it
answers FALLBACK and the client runs the call cold, nothing having been done.  Only once
it has answered PID does the client send its fds, so a worker that hangs before that
holds none of them (the client, tired of waiting, runs the call cold).

The worker then becomes the process a cold `pyruntime` would have been: the client's
fds at the same numbers (and nothing else), its environment, cwd and umask, and its pid
for the answers that depend on the caller (pyruntime/caller.py).  Then it runs the CLI's
main() and sends the exit status.  What must be the client's own doing - forking stage1
and init, reaping them - is delegated to it (pyruntime/children.py).
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from pyruntime import caller, children
from pyruntime.served import admission, protocol

HELLO_TIMEOUT = 30.0  # seconds a connection may take to say HELLO (the client: at once)


class Hello:
    """The client's HELLO record: the call, and the numbers its fds will take.  The fds
    themselves come in the FDS record, once this worker has agreed to serve the call."""

    def __init__(self, fields: list[bytes]) -> None:
        if not fields or fields[0] != b"HELLO":
            raise ConnectionError("pyruntime client: expected HELLO")
        it = iter(fields[1:])
        self.build_id = next(it).decode(errors="replace")
        self.cwd = os.fsdecode(next(it))
        self.umask = int(next(it))
        self.sock_fd = int(next(it))
        self.argv = [os.fsdecode(next(it)) for _ in range(int(next(it)))]
        env = [next(it) for _ in range(int(next(it)))]
        self.environ = dict(e.partition(b"=")[::2] for e in env if b"=" in e)
        self.fd_numbers = []
        self.fd_cloexec = []
        for _ in range(int(next(it))):
            self.fd_numbers.append(int(next(it)))
            self.fd_cloexec.append(next(it) == b"1")
        self.fds: list[int] = []

    def take_fds(self, fields: list[bytes], fds: list[int]) -> None:
        """The FDS record: the client's fds, in the order HELLO listed their numbers."""
        if fields != [b"FDS"] or len(fds) != len(self.fd_numbers):
            raise ConnectionError("pyruntime client: FDS does not match HELLO")
        self.fds = fds


class Client:
    """children's parent while acting for a client: SPAWN and WAIT go to it."""

    def __init__(self, sock: socket.socket, mirrored: set[int]) -> None:
        self.sock = sock
        self.mirrored = mirrored

    def spawn(self, build) -> int:
        from pyruntime._native import ffi, lib
        from pyruntime.served.arena import SIZE, Arena

        arena = Arena(ffi, lib)
        plan = build(arena.new)
        extras = [fd for fd in _open_fds()
                  if fd not in self.mirrored and fd not in (self.sock.fileno(), arena.fd)]
        pairs: list[object] = []
        for fd in extras:
            pairs += [fd, int(not os.get_inheritable(fd))]
        protocol.send(self.sock, ["SPAWN", arena.base, SIZE, arena.address(plan), len(extras),
                                  *pairs], [arena.fd, *extras])
        os.close(arena.fd)
        rc, _ = protocol.reply(self.sock)
        return rc

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        protocol.send(self.sock, ["WAIT", pid, options])
        rc, status = protocol.reply(self.sock)
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc))
        return rc, status


def _open_fds() -> list[int]:
    names = os.listdir("/proc/self/fd")
    fds = []
    for name in names:
        fd = int(name)
        try:
            os.fstat(fd)  # the listing's own fd is gone by now
        except OSError:
            continue
        fds.append(fd)
    return fds


# serve itself; restore, whose restored init must be the caller's child (CRIU restores
# it as a sibling of criu, i.e. a child of the runtime) - and checkpoint with it
COLD_VERBS = frozenset(("serve", "checkpoint", "restore"))


def _verb(args: list[str]) -> str | None:
    from pyruntime.cli import lean

    parsed = lean.parse(args)
    return parsed.verb.name if parsed is not None else None


def _become(hello: Hello, sock: socket.socket) -> set[int]:
    """The client's fds at their numbers, this socket at the number the client's socket
    has (so no fd opened later here takes a number that is in use there), nothing else."""
    floor = max([*hello.fd_numbers, *hello.fds, hello.sock_fd, sock.fileno(), 2]) + 1
    lifted = []
    for fd in hello.fds:
        lifted.append(_lift(fd, floor))
    conn = _lift(sock.detach(), floor)
    os.dup2(conn, hello.sock_fd, inheritable=False)
    os.close(conn)
    for fd, number, cloexec in zip(lifted, hello.fd_numbers, hello.fd_cloexec, strict=True):
        os.dup2(fd, number, inheritable=not cloexec)
        os.close(fd)
    keep = set(hello.fd_numbers) | {hello.sock_fd}
    for fd in _open_fds():
        if fd not in keep:
            os.close(fd)
    return set(hello.fd_numbers)


def _die_with_client(fd: int) -> None:
    """A worker is the client's runtime process: when the client dies (SIGKILL included),
    so does the worker, as a killed cold runtime would.  The kernel signals SIGIO when the
    client's end of the socket closes (and when a record arrives: then it lives on)."""
    import fcntl
    import select

    def on_io(_sig: int, _frame: object) -> None:
        p = select.poll()
        p.register(fd, select.POLLRDHUP)
        for _, events in p.poll(0):
            if events & (select.POLLHUP | select.POLLRDHUP | select.POLLERR):
                os._exit(1)

    signal.signal(signal.SIGIO, on_io)
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
    on_io(signal.SIGIO, None)  # gone already?


def _lift(fd: int, floor: int) -> int:
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    os.close(fd)
    return moved


class Own:
    """What the server is: its build id and its privileges (pyruntime/served/admission.py),
    taken once in the server, before the spares are forked."""

    def __init__(self, build_id: str, profile: dict[str, object]) -> None:
        self.build_id = build_id
        self.profile = profile


def _refusal(hello: Hello, client_pid: int, pidfd: int, own: Own) -> str | None:
    """Why this call must run cold (None: serve it).  Decided before any side effect."""
    if hello.build_id != own.build_id:
        return "build id"
    verb = _verb(hello.argv[1:])
    if verb in COLD_VERBS:
        return verb
    return admission.difference(client_pid, pidfd, own.profile)


def run(sock: socket.socket, client_pid: int, pidfd: int, own: Own) -> None:
    """In the forked worker: serve one call, then exit.  Never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sock.settimeout(HELLO_TIMEOUT)
        try:
            fields, fds = protocol.recv(sock)
        except TimeoutError:
            os._exit(0)
        sock.settimeout(None)
        for fd in fds:  # a HELLO carries none
            os.close(fd)
        if not fields:  # closed before HELLO: someone probing the socket
            os._exit(0)
        hello = Hello(fields)
        refused = _refusal(hello, client_pid, pidfd, own)
        if pidfd >= 0:
            os.close(pidfd)
        if refused is not None:
            try:
                protocol.send(sock, ["FALLBACK", refused])  # nothing done: the client runs cold
            except OSError:  # it gave up waiting: cold already
                pass
            os._exit(0)
        # From here the client does not run the call cold any more: it sends its fds,
        # or it has given up waiting (then it closed the connection, and this ends here).
        try:
            protocol.send(sock, ["PID", os.getpid()])
            fields, fds = protocol.recv(sock)
        except OSError:  # the client gave up waiting just now
            os._exit(0)
        if not fields:
            for fd in fds:
                os.close(fd)
            os._exit(0)
        hello.take_fds(fields, fds)
        mirrored = _become(hello, sock)
        sock = socket.socket(fileno=hello.sock_fd)
        try:
            os.chdir(hello.cwd or "/")
        except OSError:
            os.chdir("/")
        os.umask(hello.umask)
        os.environb.clear()
        os.environb.update(hello.environ)
        _die_with_client(hello.sock_fd)
        caller.act_for(client_pid)
        children.delegate_to(Client(sock, mirrored))
        sys.argv = hello.argv
        from pyruntime.cli.main import main

        try:
            code = main(hello.argv[1:])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, (int, type(None))):
                print(e.code, file=sys.stderr)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        protocol.send(sock, ["EXIT", code])
    except BaseException as e:  # a worker must end with one line, not hang
        try:
            print(f"pyruntime: served worker: {type(e).__name__}: {e}", file=sys.stderr)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)

"""process.terminal: where the pty master goes (docs/process-chain.md).

The init makes the pty inside the container (native/console.c) and sends the master with
one SCM_RIGHTS message over a socket that this side connected: the --console-socket path
(containerd, podman), or, for `run` in the foreground without one, a socket pair whose
other end this process reads, to relay between the caller's terminal and the container.
"""

from __future__ import annotations

import os

from pyruntime.errors import Failure, errno_text


def check(terminal: bool, console_socket: str | None, foreground: bool) -> None:
    """runc's rules, checked before anything is made."""
    if terminal and not console_socket and not foreground:
        raise Failure("--console-socket: required when process.terminal is true "
                      "and the runtime detaches (create, run --detach)")
    if console_socket and not terminal:
        raise Failure("--console-socket: process.terminal is false: "
                      "a console socket needs a terminal")
    if console_socket and foreground:
        raise Failure("--console-socket: only with create or run --detach "
                      "(run in the foreground relays the terminal itself)")


class Console:
    """The socket the init sends the master to (send_fd), and our end (recv_fd) if ours."""

    def __init__(self, send_fd: int = -1, recv_fd: int = -1) -> None:
        self.send_fd = send_fd
        self.recv_fd = recv_fd

    def close(self) -> None:
        for fd in (self.send_fd, self.recv_fd):
            if fd >= 0:
                os.close(fd)
        self.send_fd = self.recv_fd = -1

    def receive_master(self) -> int:
        """The master the init sent (it did so before READY); -1 if it is not ours."""
        if self.recv_fd < 0:
            return -1
        import socket

        with socket.socket(fileno=os.dup(self.recv_fd)) as s:
            _, fds, _, _ = socket.recv_fds(s, 64, 1)
        if not fds:
            raise Failure("console: the container init sent no pty master")
        os.set_inheritable(fds[0], False)
        return fds[0]


def open_console(terminal: bool, console_socket: str | None) -> Console:
    """Connect to the console socket, or make a pair to receive the master ourselves."""
    if not terminal:
        return Console()
    import socket

    if console_socket is None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return Console(theirs.detach(), ours.detach())
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(console_socket)
    except OSError as e:
        s.close()
        raise Failure(f"--console-socket: {console_socket}: {errno_text(e.errno)}") from None
    return Console(s.detach())


def relay(master: int, pid: int) -> None:
    """Copy between our stdin/stdout and the pty master until the container's init exits.

    Our terminal (if stdin is one) is put in raw mode, so keys reach the container as
    typed, and its size is given to the pty now and on every SIGWINCH.
    """
    import select
    import signal
    import termios
    import tty

    stdin = 0
    saved = None
    if os.isatty(stdin):
        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)
        _copy_size(stdin, master)
        signal.signal(signal.SIGWINCH, lambda *_: _copy_size(stdin, master))
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(master, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        poller.register(stdin, select.POLLIN)
        while True:
            try:
                events = dict(poller.poll())
            except InterruptedError:
                continue
            if master in events:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every peer closed
                    data = b""
                if data:
                    _write_all(1, data)
                    continue
                poller.unregister(master)
            if stdin in events:
                data = os.read(stdin, 65536)
                if data:
                    _write_all(master, data)
                else:
                    poller.unregister(stdin)
            if pidfd in events:
                _drain(master)
                return
    finally:
        os.close(pidfd)
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)


def _copy_size(from_fd: int, to_fd: int) -> None:
    try:
        import fcntl
        import termios

        fcntl.ioctl(to_fd, termios.TIOCSWINSZ, fcntl.ioctl(from_fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except OSError:
            return
        data = data[n:]


def _drain(master: int) -> None:
    """What the container wrote just before it exited."""
    os.set_blocking(master, False)
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        _write_all(1, data)

"""Records between the `pyruntime` client and a served worker (see native/client/).

A record is one SOCK_SEQPACKET message: NUL-terminated fields, the first one its kind,
optionally with fds (SCM_RIGHTS).

    client -> worker   HELLO build_id cwd umask client_sock argc argv.. envc env..
                             nfds (fd cloexec)..
    worker -> client   FALLBACK reason       (run the Python CLI yourself; nothing was done)
                       PID pid               (served: send the fds, forward your signals)
    client -> worker   FDS                   + the fds HELLO listed, in its order
    worker -> client   SPAWN base len plan n (target cloexec)..  + memfd, n fds
                       WAIT pid options
                       EXIT code
    client -> worker   R a b                 (the answer to SPAWN or WAIT)
"""

from __future__ import annotations

import array
import os
import socket

MAX_FDS = 250
MAX_RECORD = 1 << 20


def send(sock: socket.socket, fields: list[object], fds: list[int] = ()) -> None:
    data = b"".join(str(f).encode() + b"\0" if not isinstance(f, bytes) else f + b"\0"
                    for f in fields)
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([data], anc)


def recv(sock: socket.socket) -> tuple[list[bytes], list[int]]:
    """One record and the fds it carried (close-on-exec); ([], []) at end of stream."""
    data, anc, _flags, _addr = sock.recvmsg(MAX_RECORD, socket.CMSG_SPACE(4 * MAX_FDS),
                                            socket.MSG_CMSG_CLOEXEC)
    fds: list[int] = []
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(payload[:len(payload) - len(payload) % a.itemsize])
            fds.extend(a)
    if not data:
        return [], fds
    return data.split(b"\0")[:-1], fds


def reply(sock: socket.socket) -> tuple[int, int]:
    """The client's R record: two integers."""
    fields, fds = recv(sock)
    for fd in fds:
        os.close(fd)
    if len(fields) < 3 or fields[0] != b"R":
        raise ConnectionError("pyruntime client: no answer")
    return int(fields[1]), int(fields[2])

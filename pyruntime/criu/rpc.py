"""CRIU's RPC: `criu swrk FD` holds one end of a SOCK_SEQPACKET pair; requests and
responses are the protobuf messages of CRIU's rpc.proto.

The message classes are the ones Debian's criu package ships (pycriu's rpc_pb2), so
nothing here encodes the wire format by hand; they need the protobuf runtime, which the
`criu` extra installs into the venv.
"""

from __future__ import annotations

import os
import socket
import subprocess

from pyruntime.errors import Failure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# where distributions put pycriu's generated module
RPC_PB2_PATHS = ("/usr/lib/python3/dist-packages/pycriu/rpc_pb2.py",
                 "/usr/lib/python3/site-packages/pycriu/rpc_pb2.py")
MAX_MSG = 1 << 20


def load_rpc():  # the generated module
    """pycriu's rpc_pb2: from an importable pycriu, else from the criu package's file."""
    try:
        from pycriu import rpc_pb2  # type: ignore[import-not-found]

        return rpc_pb2
    except ImportError:
        pass
    try:
        import google.protobuf  # noqa: F401
    except ImportError:
        raise Failure("checkpoint/restore: the protobuf package is not installed "
                      "(pip install 'pyruntime[criu]')") from None
    import importlib.util

    for path in RPC_PB2_PATHS:
        if os.path.exists(path):
            spec = importlib.util.spec_from_file_location("rpc_pb2", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            return module
    raise Failure("checkpoint/restore: CRIU's RPC definitions (pycriu) were not found; "
                  "install the criu package")


# what --pre-dump and --lazy-pages need of CRIU (its FEATURE_CHECK names)
FEATURES = {"mem_track": "--pre-dump needs CRIU's memory change tracking (soft-dirty)",
            "lazy_pages": "--lazy-pages needs CRIU's lazy pages (userfaultfd)"}


def check_features(rpc, criu: str, verb: str, wanted: list[str]) -> None:
    """As runc: before a request that needs them, ask CRIU (FEATURE_CHECK) for the
    features in `wanted`. A CRIU that cannot even answer is left to fail on the request
    itself, whose log then says why."""
    if not wanted:
        return
    req = rpc.criu_req(type=rpc.FEATURE_CHECK,
                       features=rpc.criu_features(**dict.fromkeys(wanted, True)))
    with Swrk(criu) as swrk:
        resp = swrk.call(rpc, req)
    if not resp.success or not resp.HasField("features"):
        return
    missing = [FEATURES[name] for name in wanted if not getattr(resp.features, name)]
    if missing:
        raise Failure(f"{verb}: {'; '.join(missing)}, which CRIU does not have here")


class CriuError(Failure):
    """CRIU said no: one line with CRIU's own reason and where its log is."""


def last_error(log_path: str) -> str:
    """The most telling lines of a CRIU log: its first "Error" line (the cause; later ones
    are its consequences), without the timestamp and source position; when CRIU could
    not even probe the kernel, says so."""
    try:
        with open(log_path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    errors = [ln for ln in lines if " Error (" in ln]
    if not errors:
        return ""
    # "(00.012345) Error (criu/mount.c:123): mnt: the reason" -> "mnt: the reason"
    first = errors[0].split("): ", 1)[-1].strip()
    if any("kerndat" in ln or "kernel features detection" in ln for ln in errors):
        return f"CRIU does not work on this kernel ({os.uname().release}): {first}"
    return first


def failed(what: str, log: str, resp) -> CriuError:  # rpc.criu_resp
    """The one line for a CRIU request that failed: CRIU's own first error, its log."""
    why = last_error(log) or (resp.cr_errmsg or f"errno {resp.cr_errno}")
    return CriuError(f"{what} failed: {why} (log: {log})")


class Swrk:
    """One `criu swrk` process and the socket to it."""

    def __init__(self, criu: str, *, pass_fds: tuple[int, ...] = (),
                 stdio: tuple[int, int, int] | None = None,
                 preexec: Callable[[], None] | None = None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        try:
            self.proc = subprocess.Popen(
                [criu, "swrk", str(theirs.fileno())],
                pass_fds=(theirs.fileno(), *pass_fds),
                stdin=stdio[0] if stdio else subprocess.DEVNULL,
                stdout=stdio[1] if stdio else subprocess.DEVNULL,
                stderr=stdio[2] if stdio else subprocess.DEVNULL,
                preexec_fn=preexec, close_fds=True)
        except FileNotFoundError:
            ours.close()
            raise Failure(f"checkpoint/restore: criu not found: {criu} (install criu, or "
                          "give its path with --criu)") from None
        except subprocess.SubprocessError as e:  # preexec failed in the child
            ours.close()
            raise Failure(f"checkpoint/restore: starting criu failed: {e}") from None
        finally:
            theirs.close()
        self.pid = self.proc.pid

    def call(self, rpc, req, on_notify: Callable[[str, int, list[int]], None] | None = None):
        """Send `req`; answer CRIU's notifications (on_notify(script, pid, fds)) until
        the response to `req` comes; return it."""
        self.sock.send(req.SerializeToString())
        while True:
            data, fds = self._recv()
            if not data:
                raise Failure("criu swrk exited without answering")
            resp = rpc.criu_resp()
            resp.ParseFromString(data)
            if resp.type != rpc.NOTIFY:
                for fd in fds:
                    os.close(fd)
                return resp
            ok = True
            try:
                if on_notify is not None:
                    on_notify(resp.notify.script, resp.notify.pid, fds)
            except Failure:
                ok = False
                raise
            finally:
                for fd in fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                answer = rpc.criu_req(type=rpc.NOTIFY, notify_success=ok)
                try:
                    self.sock.send(answer.SerializeToString())
                except OSError:
                    pass

    def _recv(self) -> tuple[bytes, list[int]]:
        fds: list[int] = []
        data, ancdata, _flags, _addr = self.sock.recvmsg(
            MAX_MSG, socket.CMSG_SPACE(4 * 4))
        import array

        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                a = array.array("i")
                a.frombytes(payload[: len(payload) - len(payload) % a.itemsize])
                fds.extend(a)
        for fd in fds:
            os.set_inheritable(fd, False)
        return data, fds

    def __enter__(self) -> Swrk:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> int:
        self.sock.close()
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

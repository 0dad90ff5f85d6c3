"""The state store: one directory per container under --root, holding state.json.

Status is derived, never trusted: the recorded init pid counts only while the process
with that pid has the recorded start time. The directory is made with mkdir, so of two
concurrent creates of one id exactly one wins.
"""

from __future__ import annotations

import os

from pyruntime import jsonio
from pyruntime.errors import Failure, NotFound
from pyruntime.procfs import is_alive

STATE_FILE = "state.json"
FIFO_NAME = "exec.fifo"
IMAGES_DIR = "images"  # <root>/images: the image store and image bundles, not a container
_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = _ID_FIRST | frozenset("_.+-")


def check_id(container_id: str) -> None:
    """Reject ids that are not ^[A-Za-z0-9][A-Za-z0-9_.+-]*$ before anything touches disk."""
    if (
        not container_id
        or container_id[0] not in _ID_FIRST
        or not _ID_REST.issuperset(container_id)
        or len(container_id) > 1024
    ):
        raise Failure(f"invalid container id {container_id!r}: "
                      "must match ^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class ContainerState:
    """What state.json records about one container."""

    def __init__(self, data: dict) -> None:
        self.data = data

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def pid(self) -> int:
        return self.data.get("pid", 0)

    @property
    def start_time(self) -> int:
        return self.data.get("start_time", 0)


class Store:
    """The --root directory."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def dir(self, container_id: str) -> str:
        check_id(container_id)
        return os.path.join(self.root, container_id)

    def reserve(self, container_id: str) -> str:
        """Make the container's directory; fail if the id is taken."""
        path = self.dir(container_id)
        if container_id == IMAGES_DIR:
            raise Failure(f"container id {container_id!r} is reserved (the image store)")
        try:
            os.makedirs(self.root, mode=0o711, exist_ok=True)
        except PermissionError as e:
            from pyruntime.rootless import root_failure

            raise root_failure(self.root, e) from None
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise Failure(f"container with id exists: {container_id}") from None
        return path

    def load(self, container_id: str) -> ContainerState:
        path = os.path.join(self.dir(container_id), STATE_FILE)
        try:
            with open(path, "rb") as f:
                return ContainerState(jsonio.loads(f.read()))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(container_id) from None
        except ValueError:
            raise Failure(f"container {container_id}: state file is corrupt") from None

    def save(self, state: ContainerState) -> None:
        """Write state.json atomically (temp file + rename)."""
        directory = self.dir(state.id)
        tmp = os.path.join(directory, f".{STATE_FILE}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, jsonio.dumps(state.data).encode())
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(directory, STATE_FILE))

    def remove(self, container_id: str) -> None:
        """Remove the container's directory and what is in it (the store keeps it flat)."""
        path = self.dir(container_id)
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(path, name))
            except IsADirectoryError:
                import shutil

                shutil.rmtree(os.path.join(path, name), ignore_errors=True)
            except FileNotFoundError:
                pass
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass

    def ids(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.root)
                          if n != IMAGES_DIR and os.path.isdir(os.path.join(self.root, n)))
        except FileNotFoundError:
            return []

    def status(self, state: ContainerState) -> str:
        """created | running | paused | stopped, derived from the init's liveness, the
        cgroup freezer and the fifo."""
        if state.pid <= 0 or not is_alive(state.pid, state.start_time):
            return "stopped"
        if state.data.get("cgroup"):
            from pyruntime.cgroups import from_record

            cgroup = from_record(state.data["cgroup"])
            if cgroup is not None and cgroup.frozen():
                return "paused"
        if os.path.exists(os.path.join(self.dir(state.id), FIFO_NAME)):
            return "created"
        return "running"

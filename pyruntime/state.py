"""The state store: one directory per container under --root, holding state.json.

Status is derived, never trusted: the recorded init pid counts only while the process
with that pid has the recorded start time. The directory is made with mkdir, so of two
concurrent creates of one id exactly one wins.

Crash consistency: right after that mkdir, before any other side effect, `create` writes
provisional.json (who is creating it, the cgroup directories it is about to make, the
image bundle of `run --image`). state.json, written once the init is READY, supersedes it.
A directory without a usable state.json is therefore either a create in progress (its
creator is alive) or the leftover of a runtime that died; pyruntime/leftover.py clears the
latter on `delete --force`.
"""

from __future__ import annotations

import os

from pyruntime import jsonio
from pyruntime.errors import Failure, NotFound, crash_point
from pyruntime.procfs import is_alive

STATE_FILE = "state.json"
PROVISIONAL_FILE = "provisional.json"
FIFO_NAME = "exec.fifo"
STATE_MAX = 16 << 20  # bytes: a state record is small; anything bigger is not ours
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


class CorruptState(Failure):
    """state.json exists but cannot be used: reported for that id only."""

    def __init__(self, container_id: str, problem: str) -> None:
        super().__init__(f"container {container_id}: {STATE_FILE} is corrupt: {problem}")
        self.container_id = container_id


_STATE_FIELDS = (("id", str), ("pid", int), ("start_time", int), ("bundle", str),
                 ("rootfs", str), ("created", str), ("owner", str), ("annotations", dict),
                 ("cgroup", dict), ("hooks", dict), ("image_bundle", str))


def check_state(container_id: str, data: object) -> dict:
    """The fields the verbs read, of the types they expect; else CorruptState."""
    if not isinstance(data, dict):
        raise CorruptState(container_id, "not a JSON object")
    for key, kind in _STATE_FIELDS:
        value = data.get(key)
        if value is not None and (not isinstance(value, kind) or value is True
                                  or value is False):
            raise CorruptState(container_id, f"{key}: not {kind.__name__}")
    if data.get("id") != container_id:
        raise CorruptState(container_id, "id: does not match its directory")
    check_cgroup_record(container_id, data.get("cgroup"))
    for name, items in (data.get("hooks") or {}).items():
        if not isinstance(items, list) or not all(isinstance(h, dict) for h in items):
            raise CorruptState(container_id, f"hooks.{name}: not a list of objects")
    return data


def check_cgroup_record(container_id: str, record: object) -> None:
    if not record:
        return
    if not isinstance(record, dict):
        raise CorruptState(container_id, "cgroup: not an object")
    paths, created = record.get("paths") or {}, record.get("created") or []
    if (not isinstance(paths, dict) or not all(isinstance(v, str) and v.startswith("/")
                                               for v in paths.values())
            or not isinstance(created, list)
            or not all(isinstance(v, str) and v.startswith("/") for v in created)
            or not isinstance(record.get("mode", ""), str)
            or not isinstance(record.get("mountpoint", ""), str)):
        raise CorruptState(container_id, "cgroup: paths and created must be absolute paths")


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
            hint = ""
            if not os.path.lexists(os.path.join(path, STATE_FILE)):  # a create in progress,
                hint = f" (not created in full; `delete --force {container_id}` clears it)"
            raise Failure(f"container with id exists: {container_id}{hint}") from None
        return path

    def load(self, container_id: str) -> ContainerState:
        """state.json: NotFound without one, CorruptState if it cannot be used."""
        raw = self._read(container_id, STATE_FILE)
        if raw is None:
            raise NotFound(container_id)
        try:
            data = jsonio.loads(raw)
        except (ValueError, RecursionError) as e:
            raise CorruptState(container_id, str(e) or type(e).__name__) from None
        return ContainerState(check_state(container_id, data))

    def _read(self, container_id: str, name: str) -> bytes | None:
        """A record of the container's directory (at most STATE_MAX bytes), None if absent."""
        path = os.path.join(self.dir(container_id), name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise CorruptState(container_id, f"{name}: {e.strerror}") from None
        try:
            import stat

            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise CorruptState(container_id, f"{name}: not a regular file")
            if st.st_size > STATE_MAX:
                raise CorruptState(container_id, f"{name}: over {STATE_MAX} bytes")
            return os.read(fd, STATE_MAX + 1)
        finally:
            os.close(fd)

    def save_provisional(self, container_id: str, record: dict) -> None:
        """provisional.json: what a runtime killed before state.json leaves to clear.

        Written in place, without the temp file and rename: a record torn by a kill is
        read as none, and nothing it names exists yet then (it is written before)."""
        path = os.path.join(self.dir(container_id), PROVISIONAL_FILE)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, jsonio.dumps(record).encode())
        finally:
            os.close(fd)

    def load_provisional(self, container_id: str) -> dict | None:
        """The provisional record, or None if there is none or it is unreadable (a runtime
        killed while writing it made nothing else yet)."""
        try:
            raw = self._read(container_id, PROVISIONAL_FILE)
            data = jsonio.loads(raw) if raw is not None else None
        except (Failure, ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None

    def save(self, state: ContainerState) -> None:
        """Write state.json atomically (temp file + rename)."""
        self._write(state.id, STATE_FILE, state.data)

    def _write(self, container_id: str, name: str, data: dict) -> None:
        directory = self.dir(container_id)
        tmp = os.path.join(directory, f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, jsonio.dumps(data).encode())
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(directory, name))

    def remove(self, container_id: str) -> None:
        """Remove the container's directory and what is in it (the store keeps it flat)."""
        path = self.dir(container_id)
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return
        # the records first, the provisional one before state.json: a delete killed in
        # between leaves state.json (deleted again in full), after it a directory without
        # records (pyruntime/leftover.py removes it)
        first = [n for n in (PROVISIONAL_FILE, STATE_FILE) if n in names]
        names = first + [n for n in names if n not in first]
        for i, name in enumerate(names):
            if i == 1:
                crash_point("delete:state-removal")
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

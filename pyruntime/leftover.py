"""Clear what a runtime killed in the middle of a verb left of a container.

Such a leftover is a state directory without a usable state.json (a create killed before
saving it, a delete killed while removing it, a corrupt file), and/or the image bundle of
a `run --image` (`<root>/images/containers/<id>`).  What it may hold is named by the
provisional record create wrote before its first side effect (pyruntime/state.py): the
cgroup directories it was about to make (whatever they hold is killed, then they are
removed), the image bundle (unmounted, removed).  The init itself dies with its creator
until state.json is saved (native/lifeline.c), and lives in those cgroups anyway.
"""

from __future__ import annotations

import os

from pyruntime.errors import Failure
from pyruntime.state import IMAGES_DIR, CorruptState, Store, check_cgroup_record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

RUN_BUNDLES = "containers"  # <root>/images/containers/<id>: pyruntime/verbs/image.py


def image_bundle_dir(store: Store, container_id: str) -> str:
    return os.path.join(store.root, IMAGES_DIR, RUN_BUNDLES, container_id)


def clear(store: Store, container_id: str, *, force: bool, corrupt: bool = False,
          warn: Callable[[str], None] | None = None) -> bool:
    """Remove the leftover of `container_id`; False if there is none (no such id)."""
    directory = store.dir(container_id)
    bundle = image_bundle_dir(store, container_id)
    has_dir, has_bundle = os.path.isdir(directory), os.path.isdir(bundle)
    if not has_dir and not has_bundle:
        return False
    record = store.load_provisional(container_id) if has_dir else None
    record = record or {}
    creator = record.get("creator")
    if not corrupt and _alive(creator):
        if not _orphaned(record):
            raise Failure(f"container {container_id} is being created (by pid {creator[0]})")
        if force:  # a served worker whose client died: it is dying with it, end it now
            _end(creator)
    if not force:
        what = "its state file is corrupt" if corrupt else "a runtime died while making it"
        raise Failure(f"container {container_id} is a leftover ({what}); "
                      f"`delete --force {container_id}` removes it")
    from pyruntime.cgroups import from_record

    try:
        check_cgroup_record(container_id, record.get("cgroup"))
        cgroup = from_record(_not_in_use(store, container_id, record.get("cgroup")))
    except CorruptState:
        cgroup = None
    if cgroup is not None:
        cgroup.destroy()  # kills what they hold first; Failure if one stays busy
    if has_bundle:
        from pyruntime.image.commands import delete_bundle

        delete_bundle(bundle, remove_dir=True)
    store.remove(container_id)
    if warn is not None and corrupt:
        warn(f"container {container_id}: removed with a corrupt state file")
    return True


def _not_in_use(store: Store, container_id: str, record: dict | None) -> dict | None:
    """The cgroup record without the directories another container of this root records
    (it may have made them its own since: same cgroupsPath), so that they are not killed."""
    if not record:
        return record
    used: set[str] = set()
    for cid in store.ids():
        if cid == container_id:
            continue
        try:
            other = store.load(cid).data.get("cgroup") or {}
        except Failure:  # being made, or a leftover itself: its provisional record
            other = store.load_provisional(cid) or {}
            other = other.get("cgroup") if isinstance(other.get("cgroup"), dict) else {}
        for d in [*(other.get("paths") or {}).values(), *(other.get("created") or [])]:
            if isinstance(d, str):
                used.add(d)

    def free(d: str) -> bool:
        return not any(u == d or u.startswith(d + "/") for u in used)

    paths = {k: v for k, v in (record.get("paths") or {}).items() if free(v)}
    created = [d for d in record.get("created") or [] if free(d)]
    return {**record, "paths": paths, "created": created}


def _orphaned(record: dict) -> bool:
    """The record names the client a served creator acts for, and that client is gone."""
    client = record.get("client")
    return (isinstance(client, list) and len(client) == 2
            and all(isinstance(v, int) and v > 0 for v in client) and not _alive(client))


def _end(creator: list[int]) -> None:
    """SIGKILL the creator (through a pidfd: it is the recorded process, not one that
    reused its pid) and wait until it is gone, so that it makes nothing more."""
    import _signal
    import select

    pid, start = creator
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        from pyruntime.procfs import is_alive

        if not is_alive(pid, start):
            return
        _signal.pidfd_send_signal(pidfd, 9)
        p = select.poll()
        p.register(pidfd, select.POLLIN)
        if not p.poll(10_000):
            raise Failure(f"pid {pid}, which was creating the container, does not exit")
    finally:
        os.close(pidfd)


def _alive(creator: object) -> bool:
    """The [pid, start time] of the process that wrote the provisional record still runs."""
    if not isinstance(creator, list) or len(creator) != 2:
        return False
    pid, start = creator
    if not isinstance(pid, int) or not isinstance(start, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return False
    from pyruntime.procfs import is_alive

    return is_alive(pid, start)

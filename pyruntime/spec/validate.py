"""Rules that relate config.json fields to each other, checked before anything runs.

The decoder (record.py) has already checked every field's shape and every integer's range
(model.py); this module checks the meaning: versions, paths, namespaces, id mappings, and
the process (process_rules.py, shared with exec). Each failure names the JSON path.
"""

from __future__ import annotations

from pyruntime.errors import Failure
from pyruntime.plan.linux_consts import NAMESPACE_FLAGS
from pyruntime.spec.model import Spec

NAMESPACE_TYPES = tuple(NAMESPACE_FLAGS)
SUPPORTED_MAJOR_MINOR = ("1.0", "1.1", "1.2")


def _fail(path: str, problem: str) -> Failure:
    return Failure(f"config.json: {path}: {problem}")


def validate(spec: Spec) -> None:
    """Raise Failure for the first rule `spec` breaks."""
    _version(spec.oci_version)
    if spec.process is None:
        raise _fail("process", "required to create a container")
    if spec.root is None:
        raise _fail("root", "required field is missing")
    if not spec.root.path:
        raise _fail("root.path", "must not be empty")
    from pyruntime.spec.process_rules import check_process

    check_process(spec.process, "config.json: process.")
    linux = spec.linux
    namespaces = {}
    if linux is not None:
        for i, ns in enumerate(linux.namespaces):
            where = f"linux.namespaces[{i}]"
            if ns.type not in NAMESPACE_TYPES:
                raise _fail(f"{where}.type", f"unknown namespace type {ns.type!r}")
            if ns.type in namespaces:
                raise _fail(f"{where}.type", f"namespace {ns.type!r} given twice")
            if ns.path is not None and not ns.path.startswith("/"):
                raise _fail(f"{where}.path", "must be an absolute path")
            namespaces[ns.type] = ns
        has_maps = bool(linux.uid_mappings or linux.gid_mappings)
        if has_maps and "user" not in namespaces:
            raise _fail("linux.uidMappings", "id mappings need a user namespace")
        if (
            "user" in namespaces
            and namespaces["user"].path is None
            and not (linux.uid_mappings and linux.gid_mappings)
        ):
            raise _fail("linux.uidMappings", "a new user namespace needs uid and gid mappings")
        if linux.rootfs_propagation not in (None, "", "private", "rprivate", "slave", "rslave",
                                            "shared", "rshared", "unbindable", "runbindable"):
            raise _fail("linux.rootfsPropagation", f"unknown value {linux.rootfs_propagation!r}")
    if spec.hostname and "uts" not in namespaces:
        raise _fail("hostname", "setting the hostname needs a new uts namespace")
    if spec.domainname and "uts" not in namespaces:
        raise _fail("domainname", "setting the domainname needs a new uts namespace")
    if linux is not None and "mount" not in namespaces:
        _no_mount_namespace(linux)
    _relative_destinations(spec)
    _hooks(spec)
    _lsm(spec)


def _relative_destinations(spec: Spec) -> None:
    """A relative mount destination is deprecated but allowed by the runtime-spec, and
    runc 1.1 mounts it relative to / with a warning: so does this."""
    notes = []
    for i, m in enumerate(spec.mounts):
        if not m.destination.strip("/"):
            if not m.destination:
                raise _fail(f"mounts[{i}].destination", "must be an absolute path: ''")
            continue
        if not m.destination.startswith("/"):
            notes.append(f"config.json: mounts[{i}].destination: {m.destination!r} is not "
                         "absolute (deprecated); mounted at "
                         f"'/{m.destination}'")
            m.destination = "/" + m.destination
    if notes:
        spec.load_warnings = tuple(notes)


def _no_mount_namespace(linux) -> None:
    """Without a mount namespace the container's mounts are made in the runtime's own
    (native/rootfs.c): refuse what would change the runtime's mounts outside the rootfs,
    as runc does for masked and read-only paths (runc applies rootfsPropagation to the
    runtime's / instead)."""
    for field, value in (("linux.maskedPaths", linux.masked_paths),
                         ("linux.readonlyPaths", linux.readonly_paths),
                         ("linux.rootfsPropagation", linux.rootfs_propagation)):
        if value:
            raise _fail(field, "needs a mount namespace (linux.namespaces has none, so the "
                        "container would share the runtime's mounts)")


def _hooks(spec: Spec) -> None:
    if spec.hooks is None:
        return
    from pyruntime.hooks import KINDS

    for kind in KINDS:
        for i, hook in enumerate(getattr(spec.hooks, _snake(kind))):
            where = f"hooks.{kind}[{i}]"
            if not hook.path.startswith("/"):
                raise _fail(f"{where}.path", f"must be an absolute path: {hook.path!r}")
            for j, e in enumerate(hook.env or []):
                if "=" not in e:
                    raise _fail(f"{where}.env[{j}]", f"expected KEY=VALUE, got {e!r}")


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _lsm(spec: Spec) -> None:
    """linux.mountLabel: see process_rules.refuse_lsm (the process's labels are checked
    with the process)."""
    if spec.linux is not None and spec.linux.mount_label:
        from pyruntime.spec.process_rules import refuse_lsm

        refuse_lsm("config.json: linux.mountLabel", "SELinux")


def _version(version: str) -> None:
    parts = version.split(".")
    if len(parts) < 2 or ".".join(parts[:2]) not in SUPPORTED_MAJOR_MINOR:
        raise _fail("ociVersion", f"unsupported version {version!r} (1.0.x to 1.2.x)")

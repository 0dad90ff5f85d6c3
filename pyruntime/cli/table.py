"""Every verb and option pyruntime accepts, as data.

Both parsers are built from this table: lean.py (no click: the hot path that containerd
and podman call per container) and app.py (click: help, completion, errors for people).
tests/test_cli_table.py proves the two agree.
"""

from __future__ import annotations

INT_RANGE = (-(2**31), 2**31 - 1)


class Opt:
    """An option: `kind` is "flag", "str", "int" or "multi" (repeatable string); an "int"
    is an int32, as the C field it ends up in (struct pyrt_plan's preserve_fds)."""

    __slots__ = ("names", "dest", "kind", "default", "help", "choices")

    def __init__(self, names: str, kind: str = "str", default: object = None, help: str = "",
                 choices: tuple[str, ...] | None = None, dest: str | None = None) -> None:
        self.names = tuple(names.split())
        self.kind = kind
        self.default = [] if kind == "multi" else (False if kind == "flag" else default)
        self.help = help
        self.choices = choices
        longest = max(self.names, key=len)
        self.dest = dest or longest.lstrip("-").replace("-", "_")


class Arg:
    """A positional: `nargs` is 1 (required), "?" (optional) or "*" (the rest)."""

    __slots__ = ("name", "nargs")

    def __init__(self, name: str, nargs: int | str = 1) -> None:
        self.name = name
        self.nargs = nargs


class Verb:
    __slots__ = ("name", "help", "options", "args", "handler")

    def __init__(self, name: str, handler: str, help: str, options: tuple[Opt, ...] = (),
                 args: tuple[Arg, ...] = ()) -> None:
        self.name = name
        self.handler = handler
        self.help = help
        self.options = options
        self.args = args


GLOBAL_OPTIONS = (
    Opt("--root", default="/run/pyruntime",
        help="root directory for container state (non-root: $XDG_RUNTIME_DIR/pyruntime)"),
    Opt("--log", help="log file (default: stderr)"),
    Opt("--log-format", default="text", choices=("text", "json"), help="log format"),
    Opt("--debug", "flag", help="log debug messages"),
    Opt("--systemd-cgroup", "flag", help="manage cgroups with systemd (needs systemd)"),
    Opt("--rootless", default="auto",
        help="leave out cgroups this user may not create: true, false or auto (when not "
        "root); runc's spellings (1, t, TRUE, 0, f, ...) too"),
    Opt("--criu", default="criu", help="path to the criu binary used for checkpoint and restore"),
    Opt("--image-root", help="the image store (default: $PYRUNTIME_IMAGE_ROOT, else "
        "/var/lib/pyruntime); never under --root"),
)

_BUNDLE = Opt("-b --bundle", default=".", help="path to the bundle directory")
_PID_FILE = Opt("--pid-file", help="file to write the init's pid to")
_CONSOLE = Opt("--console-socket", help="unix socket to send the pty master to")
_ID = Arg("container_id")
_REGISTRY_OPTIONS = (
    Opt("--tls-verify", default="true", choices=("true", "false"),
        help="false: accept any certificate, and plain HTTP"),
    Opt("--creds", help="USER:PASSWORD for the registry"),
    Opt("--authfile", help="auth.json as podman and skopeo write it (default: "
        "$REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.docker/config.json)"),
)

# the options checkpoint and restore share (runc's names)
_CRIU_COMMON = (
    Opt("--image-path", help="path for saving criu image files (default: ./checkpoint)"),
    Opt("--work-path", help="path for saving work files and logs (default: the image path)"),
    Opt("--tcp-established", "flag", help="allow open tcp connections"),
    Opt("--ext-unix-sk", "flag", help="allow external unix sockets"),
    Opt("--shell-job", "flag", help="allow shell jobs"),
    Opt("--file-locks", "flag", help="handle file locks, for safety"),
    Opt("--manage-cgroups-mode", help="cgroups mode: soft, full, strict or ignore"),
    Opt("--empty-ns", "multi", help="create a namespace, but don't restore its properties"),
    Opt("--auto-dedup", "flag", help="enable auto deduplication of memory images"),
    Opt("--lazy-pages", "flag", help="use userfaultfd to lazily restore memory pages"),
)

VERBS: dict[str, Verb] = {v.name: v for v in (
    Verb("create", "pyruntime.verbs.create:main", "create a container", (
        _BUNDLE, _CONSOLE, _PID_FILE,
        Opt("--no-pivot", "flag", help="do not use pivot_root (MS_MOVE + chroot)"),
        Opt("--no-new-keyring", "flag", help="do not create a new session keyring"),
        Opt("--preserve-fds", "int", default=0, help="pass N extra fds (from 3) to the init"),
    ), (_ID,)),
    Verb("start", "pyruntime.verbs.start:main", "start a created container", (), (_ID,)),
    Verb("run", "pyruntime.verbs.run:main", "create and start a container", (
        _BUNDLE, _CONSOLE, _PID_FILE,
        Opt("-d --detach", "flag", help="detach from the container's process"),
        Opt("--no-pivot", "flag", help="do not use pivot_root (MS_MOVE + chroot)"),
        Opt("--no-new-keyring", "flag", help="do not create a new session keyring"),
        Opt("--preserve-fds", "int", default=0, help="pass N extra fds (from 3) to the init"),
        Opt("--keep", "flag", help="do not delete the container after it exits"),
        Opt("--image", help="run a loaded image (by name) instead of --bundle"),
        Opt("--rm", "flag", help="delete the container and its image bundle when it exits"),
    ), (_ID, Arg("args", "*"))),
    Verb("exec", "pyruntime.verbs.exec:main", "run a process in a running container", (
        _CONSOLE, _PID_FILE,
        Opt("-p --process", help="process.json (runtime-spec process); replaces the flags"),
        Opt("-d --detach", "flag", help="return once the process runs"),
        Opt("-t --tty", "flag", help="allocate a pseudo-TTY (needs --console-socket)"),
        Opt("--cwd", help="working directory inside the container"),
        Opt("-e --env", "multi", help="KEY=VALUE added to the container's environment"),
        Opt("-u --user", help="UID[:GID]"),
        Opt("-g --additional-gids", "multi", help="an additional group id"),
        Opt("-c --cap", "multi", help="add a capability (CAP_NET_ADMIN)"),
        Opt("--no-new-privs", "flag", help="set no_new_privs for the process"),
        Opt("--apparmor", help="AppArmor profile (not on this host)"),
        Opt("--process-label", help="SELinux label (not on this host)"),
        Opt("--preserve-fds", "int", default=0, help="pass N extra fds (from 3)"),
        Opt("--ignore-paused", "flag", help="exec even into a paused container (freezes)"),
    ), (_ID, Arg("command", "*"))),
    Verb("state", "pyruntime.verbs.state:main", "print a container's state as JSON", (),
         (_ID,)),
    Verb("kill", "pyruntime.verbs.kill:main", "send a signal to a container's init", (
        Opt("-a --all", "flag", help="signal every process in the container"),
    ), (_ID, Arg("signal", "?"))),
    Verb("delete", "pyruntime.verbs.delete:main", "delete a container", (
        Opt("-f --force", "flag", help="kill a running container first"),
    ), (_ID,)),
    Verb("list", "pyruntime.verbs.list:main", "list containers", (
        Opt("-f --format", default="table", choices=("table", "json"), help="output format"),
        Opt("-q --quiet", "flag", help="print only the ids"),
    )),
    Verb("spec", "pyruntime.verbs.spec:main", "write a default config.json", (
        _BUNDLE,
        Opt("--rootless", "flag", help="a spec for a rootless container"),
    )),
    Verb("features", "pyruntime.verbs.features:main", "print the runtime's features as JSON"),
    Verb("serve", "pyruntime.verbs.serve:main",
         "keep an interpreter warm for the pyruntime command (not in runc)", (
             Opt("--socket", help="socket to listen on (default: <root>/serve.sock; the "
                 "client also reads $PYRUNTIME_SERVE_SOCKET)"),
         )),
    Verb("pause", "pyruntime.verbs.pause:main", "freeze every process of a container", (),
         (_ID,)),
    Verb("resume", "pyruntime.verbs.pause:resume", "thaw a paused container", (), (_ID,)),
    Verb("ps", "pyruntime.verbs.ps:main", "list the processes of a container", (
        Opt("-f --format", default="table", choices=("table", "json"), help="output format"),
    ), (_ID, Arg("ps_args", "*"))),
    Verb("update", "pyruntime.verbs.update:main", "change a running container's limits", (
        Opt("-r --resources", help="LinuxResources JSON file, or - for stdin"),
        Opt("--memory", help="memory limit (bytes, or 512k/100m/1g; -1: none)"),
        Opt("--memory-reservation", help="memory soft limit"),
        Opt("--memory-swap", help="memory + swap limit (-1: unlimited swap)"),
        Opt("--kernel-memory", help="kernel memory limit (ignored by current kernels)"),
        Opt("--kernel-memory-tcp", help="kernel TCP buffer limit"),
        Opt("--cpu-share", help="CPU shares (relative weight)"),
        Opt("--cpu-period", help="CFS period (us)"),
        Opt("--cpu-quota", help="CFS quota (us) per period; -1: none"),
        Opt("--cpu-burst", help="CFS burst (us)"),
        Opt("--cpu-rt-period", help="realtime period (us)"),
        Opt("--cpu-rt-runtime", help="realtime runtime (us) per period"),
        Opt("--cpu-idle", help="1: SCHED_IDLE for the cgroup"),
        Opt("--cpuset-cpus", help="CPUs to use (e.g. 0-1)"),
        Opt("--cpuset-mems", help="memory nodes to use"),
        Opt("--pids-limit", help="maximum number of tasks; -1: none"),
        Opt("--blkio-weight", help="block IO weight (10..1000)"),
    ), (_ID,)),
    Verb("events", "pyruntime.verbs.events:main", "stream a container's stats and OOM events", (
        Opt("--stats", "flag", help="print the stats once and exit"),
        Opt("--interval", default="5s", help="time between stats lines (e.g. 5s, 500ms)"),
    ), (_ID,)),
    Verb("checkpoint", "pyruntime.verbs.checkpoint:main",
         "checkpoint a running container (CRIU)", (
             *_CRIU_COMMON,
             Opt("--parent-path", help="path for previous criu image files in pre-dump"),
             Opt("--leave-running", "flag", help="leave the process running after "
                 "checkpointing"),
             Opt("--pre-dump", "flag", help="dump the container's memory only, leaving the "
                 "container running after this"),
         ), (_ID,)),
    Verb("restore", "pyruntime.verbs.restore:main",
         "restore a container from a previous checkpoint (CRIU)", (
             *_CRIU_COMMON,
             _CONSOLE,
             _BUNDLE,
             Opt("-d --detach", "flag", help="detach from the container's process"),
             _PID_FILE,
             Opt("--no-subreaper", "flag", help="disable the use of the subreaper used to "
                 "reap reparented processes"),
             Opt("--no-pivot", "flag", help="do not use pivot_root (CRIU restores the root "
                 "itself; accepted for runc's command line)"),
         ), (_ID,)),
    # two-word verbs: "GROUP SUB" (GROUPS below); only these import pyruntime.image
    Verb("image load", "pyruntime.verbs.image:load",
         "load an image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG]",
         (
             Opt("--name", help="the name to give it (default: its tag)"),
         ), (Arg("reference"),)),
    Verb("image pull", "pyruntime.verbs.image:pull",
         "fetch an image from a registry: docker://HOST[:PORT]/NAME[:TAG|@sha256:DIGEST]",
         _REGISTRY_OPTIONS, (Arg("reference"),)),
    Verb("image push", "pyruntime.verbs.image:push",
         "send a stored image to a registry (to docker://DEST, else to its name)",
         _REGISTRY_OPTIONS, (Arg("name"), Arg("destination", "?"))),
    Verb("image ls", "pyruntime.verbs.image:ls", "list the loaded images", (
        Opt("-f --format", default="table", choices=("table", "json"), help="output format"),
        Opt("-q --quiet", "flag", help="print only the names"),
    )),
    Verb("image inspect", "pyruntime.verbs.image:inspect",
         "per-layer sizes, changes and wasted bytes of an image", (
             Opt("-f --format", default="text", choices=("text", "json"), help="output format"),
         ), (Arg("name"),)),
    Verb("image bundle", "pyruntime.verbs.image:bundle",
         "write an OCI bundle (overlay rootfs) for an image", (
             Opt("--mount", "flag", help="also mount the overlay on DIR/rootfs"),
         ), (Arg("name"), Arg("dir"), Arg("args", "*"))),
    Verb("image unbundle", "pyruntime.verbs.image:unbundle",
         "unmount a bundle made by `image bundle` and remove it with its upper layer", (),
         (Arg("dir"),)),
    Verb("image rm", "pyruntime.verbs.image:rm", "forget an image (prune frees its layers)",
         (), (Arg("name"),)),
    Verb("image prune", "pyruntime.verbs.image:prune", "remove layers that no image uses"),
)}

# the first word of the two-word verbs, with its help
GROUPS: dict[str, str] = {"image": "pull, push, load, list, inspect and prune OCI images"}

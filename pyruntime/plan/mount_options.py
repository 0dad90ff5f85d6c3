"""config.json mount options as data: what each sets or clears in mount(2)'s flags."""

from __future__ import annotations

from pyruntime.plan import linux_consts as k

# option -> (clear?, flag)
FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, k.MS_RDONLY),
    "rw": (True, k.MS_RDONLY),
    "nosuid": (False, k.MS_NOSUID),
    "suid": (True, k.MS_NOSUID),
    "nodev": (False, k.MS_NODEV),
    "dev": (True, k.MS_NODEV),
    "noexec": (False, k.MS_NOEXEC),
    "exec": (True, k.MS_NOEXEC),
    "sync": (False, k.MS_SYNCHRONOUS),
    "async": (True, k.MS_SYNCHRONOUS),
    "dirsync": (False, k.MS_DIRSYNC),
    "remount": (False, k.MS_REMOUNT),
    "mand": (False, k.MS_MANDLOCK),
    "nomand": (True, k.MS_MANDLOCK),
    "noatime": (False, k.MS_NOATIME),
    "atime": (True, k.MS_NOATIME),
    "nodiratime": (False, k.MS_NODIRATIME),
    "diratime": (True, k.MS_NODIRATIME),
    "relatime": (False, k.MS_RELATIME),
    "norelatime": (True, k.MS_RELATIME),
    "strictatime": (False, k.MS_STRICTATIME),
    "nostrictatime": (True, k.MS_STRICTATIME),
    "lazytime": (False, k.MS_LAZYTIME),
    "nolazytime": (True, k.MS_LAZYTIME),
    "silent": (False, k.MS_SILENT),
    "loud": (True, k.MS_SILENT),
    "nosymfollow": (False, k.MS_NOSYMFOLLOW),
    "symfollow": (True, k.MS_NOSYMFOLLOW),
    "bind": (False, k.MS_BIND),
    "rbind": (False, k.MS_BIND | k.MS_REC),
}

PROPAGATION_OPTIONS: dict[str, int] = {
    "private": k.MS_PRIVATE,
    "rprivate": k.MS_PRIVATE | k.MS_REC,
    "shared": k.MS_SHARED,
    "rshared": k.MS_SHARED | k.MS_REC,
    "slave": k.MS_SLAVE,
    "rslave": k.MS_SLAVE | k.MS_REC,
    "unbindable": k.MS_UNBINDABLE,
    "runbindable": k.MS_UNBINDABLE | k.MS_REC,
}


# recursive attributes, applied with mount_setattr(AT_RECURSIVE) after mounting (as runc):
# option -> (clear?, MOUNT_ATTR_*)
RECURSIVE_OPTIONS: dict[str, tuple[bool, int]] = {
    "rro": (False, k.MOUNT_ATTR_RDONLY),
    "rrw": (True, k.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, k.MOUNT_ATTR_NOSUID),
    "rsuid": (True, k.MOUNT_ATTR_NOSUID),
    "rnodev": (False, k.MOUNT_ATTR_NODEV),
    "rdev": (True, k.MOUNT_ATTR_NODEV),
    "rnoexec": (False, k.MOUNT_ATTR_NOEXEC),
    "rexec": (True, k.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, k.MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, k.MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, k.MOUNT_ATTR_RELATIME),
    "rnorelatime": (True, k.MOUNT_ATTR_RELATIME),
    "rnoatime": (False, k.MOUNT_ATTR_NOATIME),
    "ratime": (True, k.MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, k.MOUNT_ATTR_STRICTATIME),
    "rnostrictatime": (True, k.MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, k.MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, k.MOUNT_ATTR_NOSYMFOLLOW),
}
_ATIME_MODES = {"rrelatime", "rnoatime", "rstrictatime"}

# runtime extensions, not mount(2) flags: tmpfs copy-up, idmapped binds
EXTENSION_OPTIONS = ("tmpcopyup", "idmap", "ridmap")


class ParsedOptions:
    """The result of reading one mount's options."""

    __slots__ = ("flags", "propagation", "data", "rec_set", "rec_clr", "extensions")

    def __init__(self, flags: int, propagation: int, data: str | None, rec_set: int = 0,
                 rec_clr: int = 0, extensions: frozenset[str] = frozenset()) -> None:
        self.flags = flags
        self.propagation = propagation
        self.data = data
        self.rec_set = rec_set
        self.rec_clr = rec_clr
        self.extensions = extensions


def parse_options(options: list[str]) -> ParsedOptions:
    """Split options into mount(2) flags, a propagation change and the fs data string.

    Anything that is not a known flag is handed to the filesystem as data, as runc does.
    """
    flags = 0
    propagation = 0
    rec_set = rec_clr = 0
    extensions: set[str] = set()
    data: list[str] = []
    for opt in options:
        known = FLAG_OPTIONS.get(opt)
        if known is not None:
            clear, flag = known
            flags = flags & ~flag if clear else flags | flag
        elif opt in PROPAGATION_OPTIONS:
            propagation = PROPAGATION_OPTIONS[opt]
        elif opt in RECURSIVE_OPTIONS:
            clear, attr = RECURSIVE_OPTIONS[opt]
            if clear and attr & k.MOUNT_ATTR__ATIME:  # the kernel clears the atime
                rec_clr |= k.MOUNT_ATTR__ATIME          # mode as a whole: back to relatime
                rec_set &= ~k.MOUNT_ATTR__ATIME
            elif clear:
                rec_clr, rec_set = rec_clr | attr, rec_set & ~attr
            else:
                rec_set, rec_clr = rec_set | attr, rec_clr & ~attr
                if opt in _ATIME_MODES:  # an atime mode replaces the others
                    rec_clr |= k.MOUNT_ATTR__ATIME
                    rec_set = (rec_set & ~k.MOUNT_ATTR__ATIME) | attr
        elif opt in EXTENSION_OPTIONS:
            extensions.add(opt)
        else:
            data.append(opt)
    return ParsedOptions(flags, propagation, ",".join(data) or None, rec_set, rec_clr,
                         frozenset(extensions))

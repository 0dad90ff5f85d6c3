"""The one list of accepted departures from runc 1.1.5, each with its reason.

An entry accepts a difference in ONE compared field (compare.py names them) for the
configs its predicate picks, optionally only when the two outcomes look as the entry says
(`shows`), or, for a report section, with its `rewrite` that undoes exactly that
departure on the lines.  Nothing else is ever skipped.  Kinds:

- DELIBERATE: pyruntime is safer, or the runtime-spec clearer, than runc 1.1.5; stays.
- BEING_FIXED: a known pyruntime bug with a fix under way; delete the entry when it lands
  (the fuzzer then checks the fix).
- RUNC: runc 1.1.5 itself is wrong or lacks the feature.
- REPORTED: a pyruntime difference found by this fuzzer and reported, with no fix under
  way yet; delete the entry with the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from differential.compare import Difference, Outcome
from pyruntime.plan.linux_consts import CAPABILITIES

KNOWN_CAPS = set(CAPABILITIES)
RECURSIVE_OPTIONS = {"rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec",
                     "rnoatime", "ratime", "rrelatime", "rnorelatime", "rstrictatime",
                     "rnostrictatime", "rnodiratime", "rdiratime", "rnosymfollow",
                     "rsymfollow"}

DELIBERATE = "deliberate"
BEING_FIXED = "known bug, being fixed"
RUNC = "runc 1.1.5 lacks it"
REPORTED = "known bug, reported, no owner yet"

Config = dict[str, Any]
Shows = Callable[[Config, Difference, Outcome, Outcome], bool]
Rewrite = Callable[[Config, list[str], bool], list[str]]


@dataclass(frozen=True)
class Departure:
    name: str
    kind: str
    fields: tuple[str, ...]  # compared fields (compare.py); "section:*" matches any section
    when: Callable[[Config], bool]  # on the generated config (host paths as placeholders)
    reason: str
    # (config, the difference, pyruntime's outcome, runc's): it looks as described
    shows: Shows | None = None
    # for a report section: a rewrite (config, lines, pyruntime's?) -> lines of both sides
    # that undoes exactly this departure; several entries' rewrites compose, so that two
    # departures in one section (mountinfo) are each accepted for what they are
    rewrite: Rewrite | None = None

    def accepts(self, config: Config, d: Difference, ours: Outcome, theirs: Outcome) -> bool:
        if not any(d.field == f or (f.endswith("*") and d.field.startswith(f[:-1]))
                   for f in self.fields):
            return False
        if self.rewrite is not None:
            return False  # see accepted(): rewrites are applied together
        return self.when(config) and (self.shows is None or self.shows(config, d, ours, theirs))

    def applies(self, config: Config, d: Difference) -> bool:
        return (self.rewrite is not None and self.when(config)
                and any(d.field == f or (f.endswith("*") and d.field.startswith(f[:-1]))
                        for f in self.fields))


# -- predicates on the config --------------------------------------------------------------

def _process(c: Config) -> dict[str, Any]:
    return c.get("process") or {}


# what the rootfs template (harness.py) has as directories, and where its symlinks lead
EXISTING_DIRS = {"/mnt": "/mnt", "/tmp": "/tmp", "/root": "/root", "/home/user": "/home/user",
                 "/existing-0700": "/existing-0700", "/link-mnt": "/mnt"}
# the fields a refusal changes: one side did not run its process (and so no hooks)
REFUSAL = ("ran", "exit", "error", "hook:*", "leftover")


def _tmpfs_over_existing(c: Config, explicit_mode: bool) -> set[str]:
    """Where a tmpfs mount goes over an existing directory (the rootfs's, or an earlier
    mount's destination), with or without mode=."""
    found, made = set(), set()
    for m in c.get("mounts", []):
        dest = EXISTING_DIRS.get(m["destination"], m["destination"])
        if (m.get("type") == "tmpfs" and (dest in made or m["destination"] in EXISTING_DIRS)
                and any(o.startswith("mode=") for o in m.get("options", [])) == explicit_mode):
            found.add(dest)
        made.add(dest)
    return found


def _without_tmpfs_lines(explicit_mode: bool) -> Rewrite:
    """Drop the lines about those tmpfs mounts' destinations, and the probe's stat lines
    (not mountinfo's) about paths below them, which the mode may make unreachable."""
    def about(x: str, d: str) -> bool:
        return f" {d} " in f" {x} " or x.endswith(f" {d}") or (
            " - " not in x and (f" {d}/" in x or f"'{d}/" in x))

    def rewrite(c: Config, lines: list[str], ours: bool) -> list[str]:
        dests = _tmpfs_over_existing(c, explicit_mode)
        return [x for x in lines if not any(about(x, d) for d in dests)]
    return rewrite


def _namespaces(c: Config) -> dict[str, dict[str, str]]:
    return {n["type"]: n for n in (c.get("linux") or {}).get("namespaces", [])}


def _new_namespace(c: Config, kind: str) -> bool:
    return kind in _namespaces(c) and "path" not in _namespaces(c)[kind]


def _as_runc_says(ours_has: str, runc_has: str) -> Rewrite:
    """pyruntime's lines with *ours_has* read *runc_has* instead."""
    def rewrite(c: Config, lines: list[str], ours: bool) -> list[str]:
        return [x.replace(ours_has, runc_has) for x in lines] if ours else lines
    return rewrite


def _without_recursive_non_bind(c: Config, lines: list[str], ours: bool) -> list[str]:
    """Drop the mountinfo lines of non-bind mounts that have recursive options."""
    dests = {m["destination"] for m in c.get("mounts", [])
             if m.get("type") not in (None, "bind")
             and not {"bind", "rbind"} & set(m.get("options", []))
             and any(o in RECURSIVE_OPTIONS for o in m.get("options", []))}
    return [x for x in lines if not any(f" {d} " in f" {x} " for d in dests)]


def _poststart_status(c: Config, d: Difference, ours: Outcome, theirs: Outcome) -> bool:
    return (d.field.startswith("hook:poststart-") and d.field.endswith(".state")
            and str(d.ours).replace('"status": "running"', '"status": "created"') == d.theirs)


def _ro_mount_hidden_later(c: Config) -> bool:
    mounts = c.get("mounts", [])
    for i, m in enumerate(mounts):
        if "ro" not in m.get("options", []):
            continue
        for later in mounts[i + 1:]:
            parent = later["destination"].rstrip("/") + "/"
            if m["destination"].startswith(parent):
                return True
    return False


def _devices(c: Config) -> list[dict[str, Any]]:
    return (c.get("linux") or {}).get("devices") or []


def _refused_with(text: str) -> Shows:
    """pyruntime did not run the process, saying *text*."""
    return lambda c, d, ours, theirs: not ours.ran and text in ours.stderr


DEPARTURES: list[Departure] = [
    # -- deliberate ----------------------------------------------------------------------
    Departure(
        "tmpfs mode= wins", DELIBERATE, ("section:paths", "section:mountinfo"),
        lambda c: bool(_tmpfs_over_existing(c, explicit_mode=True)),
        "a tmpfs with an explicit mode= over an existing directory: runc 1.1.5 chmods the "
        "new tmpfs to the directory's mode afterwards, overriding mode=; pyruntime keeps "
        "what the config asked for",
        rewrite=_without_tmpfs_lines(explicit_mode=True)),
    Departure(
        "tmpfs mode= wins (on /tmp)", DELIBERATE, ("section:actions",),
        lambda c: "/tmp" in _tmpfs_over_existing(c, explicit_mode=True),
        "the same departure as 'tmpfs mode= wins', seen by the probe writing in /tmp",
        None),
    Departure(
        "/dev/null must be 1:3 to mask", DELIBERATE, REFUSAL,
        lambda c: bool((c.get("linux") or {}).get("maskedPaths")) and any(
            d["path"] == "/dev/null" and (d.get("type"), d.get("major"), d.get("minor"))
            != ("c", 1, 3) for d in _devices(c)),
        "linux.devices replaces /dev/null with another device: masked paths are bind mounts "
        "of /dev/null, and pyruntime refuses to mask with anything but the 1:3 null device "
        "(runc masks with whatever is there)",
        _refused_with("refusing to mask")),
    Departure(
        "unknown capability names", DELIBERATE, REFUSAL,
        lambda c: any(name not in KNOWN_CAPS
                      for names in (_process(c).get("capabilities") or {}).values()
                      for name in names),
        "a capability name this runtime does not know (a typo, or lower case): runc 1.1.5 "
        "warns and runs without it; pyruntime refuses the config rather than run with "
        "other privileges than asked for",
        _refused_with("unknown capability")),
    Departure(
        "config errors before any hook", DELIBERATE, ("hook:*",),
        lambda c: bool(c.get("hooks")),
        "a config both runtimes refuse: pyruntime finds the error (config.json: ...) before "
        "running anything; runc 1.1.5 may find it later (rlimits in the container's init), "
        "after its prestart and createRuntime hooks ran",
        lambda c, d, ours, theirs: not ours.ran and not theirs.ran and d.ours is None
        and "config.json:" in ours.stderr),
    Departure(
        "LSM labels refused", DELIBERATE, REFUSAL,
        lambda c: bool(_process(c).get("apparmorProfile") or _process(c).get("selinuxLabel")
                       or (c.get("linux") or {}).get("mountLabel")),
        "pyruntime applies no LSM labels and refuses a config that asks for one, rather "
        "than run it unconfined",
        _refused_with("remove the field to run without it")),
    Departure(
        "umask out of range", DELIBERATE, REFUSAL,
        lambda c: not 0 <= ((_process(c).get("user") or {}).get("umask") or 0) <= 0o777,
        "process.user.umask above 0777: runc passes it to umask(2), which keeps the low "
        "bits; pyruntime refuses the config",
        _refused_with("process.user.umask")),
    Departure(
        "poststart state is running", DELIBERATE, ("hook:*",),
        lambda c: bool((c.get("hooks") or {}).get("poststart")),
        "the state poststart hooks read: the user's program has started, so pyruntime says "
        "'running' (the spec's meaning); runc 1.1.5 still says 'created'",
        _poststart_status),
    Departure(
        "mqueue owner in a user namespace", DELIBERATE, ("section:dev",),
        lambda c: "user" in _namespaces(c) and _new_namespace(c, "ipc"),
        "the ipc namespace's mqueue root belongs to whoever made the namespace: pyruntime "
        "clones the user and ipc namespaces at once, as host root (unmapped: nobody); runc "
        "unshares the user namespace, becomes its root, then the rest. Harmless (mode "
        "1777); tests/test_differential_runc.py documents it too",
        rewrite=_as_runc_says("nobody nogroup 40 mqueue", "root nogroup 40 mqueue")),
    # -- runc 1.1.5 lacks it --------------------------------------------------------------
    Departure(
        "seccomp flags", RUNC, REFUSAL,
        lambda c: bool(((c.get("linux") or {}).get("seccomp") or {}).get("flags")),
        "linux.seccomp.flags: runc 1.1.5 refuses any ('not yet supported'); pyruntime "
        "loads the filter with them",
        lambda c, d, ours, theirs: not theirs.ran and "seccomp flags are not yet supported"
        in theirs.stderr),
    Departure(
        "failing poststart hook", RUNC, (*REFUSAL, "section:*"),
        lambda c: any(h["path"] != "/bin/sh" or "exit 1" in " ".join(h.get("args", []))
                      for h in (c.get("hooks") or {}).get("poststart", [])),
        "a poststart hook fails: the spec says log a warning and go on, as pyruntime does; "
        "runc 1.1.5 fails `run` and kills the container",
        lambda c, d, ours, theirs: "poststart hook" in ours.stderr
        and "error running hook" in theirs.stderr),
    Departure(
        "failing poststop hook", RUNC, ("hook:*",),
        lambda c: any(h["path"] != "/bin/sh" or "exit 1" in " ".join(h.get("args", []))
                      for h in (c.get("hooks") or {}).get("poststop", [])[:-1]),
        "a poststop hook fails: the spec says log a warning and go on with the remaining "
        "ones, as pyruntime does; runc 1.1.5 skips them",
        lambda c, d, ours, theirs: d.field.startswith("hook:poststop-") and d.theirs is None
        and "poststop hook" in ours.stderr),
    Departure(
        "poststart after a failed startContainer hook", RUNC, ("hook:poststart-*",),
        lambda c: bool((c.get("hooks") or {}).get("poststart")) and any(
            h["path"] != "/bin/sh" or "exit 1" in " ".join(h.get("args", []))
            for h in (c.get("hooks") or {}).get("startContainer", [])),
        "a startContainer hook fails, so the process never runs: runc 1.1.5's start runs "
        "the poststart hooks anyway; pyruntime does not (the spec: poststart runs after "
        "the user's process has started)",
        lambda c, d, ours, theirs: not ours.ran and not theirs.ran and d.ours is None
        and "startContainer hook" in ours.stderr),
    Departure(
        "domainname", RUNC, ("section:hostname",),
        lambda c: bool(c.get("domainname")),
        "the domainname field is runtime-spec 1.1; runc 1.1.5 ignores it",
        lambda c, d, ours, theirs: theirs.report.get("hostname", [])[1:] == ["(none)"]
        and ours.report.get("hostname", [])[:1] == theirs.report.get("hostname", [])[:1]),
    Departure(
        "ro mount hidden by a later mount", RUNC, REFUSAL,
        _ro_mount_hidden_later,
        "a read-only mount, then a mount over one of its parents (hiding it): runc "
        "remounts read-only mounts at the end and fails (ENOENT) on the hidden one; "
        "pyruntime makes each mount read-only when it mounts it",
        lambda c, d, ours, theirs: not theirs.ran and "no such file or directory"
        in theirs.stderr),
    Departure(
        "recursive options on any mount", RUNC, ("section:mountinfo",),
        lambda c: any(o in RECURSIVE_OPTIONS for m in c.get("mounts", [])
                      for o in m.get("options", [])),
        "runc 1.1.5 applies recursive mount attributes (rro, rnodev, ...) to bind mounts "
        "only; pyruntime honours them on any mount, as runc 1.2 does",
        rewrite=_without_recursive_non_bind),
    Departure(
        "recursive options on any mount (on /tmp)", RUNC, ("section:actions",),
        lambda c: any(m["destination"] == "/tmp" and m.get("type") not in (None, "bind")
                      and not {"bind", "rbind"} & set(m.get("options", []))
                      and "rro" in m.get("options", []) for m in c.get("mounts", [])),
        "the same departure as 'recursive options on any mount', seen by the probe "
        "writing in a /tmp mounted with rro (read-only under pyruntime only)",
        None),
    Departure(
        "/dev/null listed in linux.devices", RUNC, REFUSAL,
        lambda c: any(d["path"] == "/dev/null" for d in _devices(c)),
        "a linux.devices entry for /dev/null: runc 1.1.5 then leaves /dev/null out of the "
        "device cgroup's default allow list and fails reopening the container's stdin "
        "(EPERM); pyruntime keeps the default devices usable",
        lambda c, d, ours, theirs: not theirs.ran and "error reopening /dev/null"
        in theirs.stderr),
    # -- known bugs, reported (fixed since, and checked here: HOME, setsid, hooks' working
    # directory and environment, error texts, the seccomp filter's place, tmpfs modes,
    # devices outside /dev, mounts over dangling symlinks, read-only tmpfs mounts,
    # oomScoreAdj in a user namespace, duplicate linux.devices paths, the name=systemd
    # hierarchy's mount source in a cgroup namespace, relative mount destinations) --------
]


def accepted(config: Config, d: Difference, ours: Outcome,
             theirs: Outcome) -> list[Departure]:
    """The entries that account for difference *d* ([] if none do)."""
    for entry in DEPARTURES:
        if entry.accepts(config, d, ours, theirs):
            return [entry]
    section = d.field.removeprefix("section:")
    if section == d.field:
        return []
    used = [e for e in DEPARTURES if e.applies(config, d)]
    a, b = ours.report.get(section, []), theirs.report.get(section, [])
    for e in used:
        assert e.rewrite is not None
        a, b = e.rewrite(config, a, True), e.rewrite(config, b, False)
    return used if used and a == b else []

"""Normalise what one run produced, and compare two runs field by field.

Compared fields (the names the allow list uses):
- "ran": whether the probe began (the container's process ran);
- "exit": the runtime's exit status (the container's, when it ran);
- "error": when neither ran because the program could not be executed (runc's error
  says `exec: "ARG0": ...`), the kind of error text (what Docker maps to exit codes:
  "no such file or directory", "permission denied", "executable file not found in $PATH");
  other failures say different things on the way for good reasons (a runtime does a step
  differently), so only their presence is compared;
- "section:NAME": a section of the probe's report (both ran);
- "hook:FILE": what a hook wrote (its environment, the state it read);
- "leftover": anything the runtime left after `run` returned.

What legitimately differs is normalised away first: the bundle path, the cgroup name
(each runtime gets its own), mount ids and device numbers, namespace inodes (labelled
host / joined / new), pids in the hooks' state and its ociVersion (the version of the
spec the runtime implements: runc 1.1.5 says 1.0.2-dev).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field

from differential.probe import BEGIN, END
from support.runc import normal_dev, normal_mountinfo, sections


@dataclass
class Outcome:
    """One runtime's run of one config, normalised."""

    rc: int
    ran: bool
    finished: bool
    report: dict[str, list[str]]
    error: str
    stderr: str
    stdout: str
    hooks: dict[str, str] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    exec_failed: bool = False  # set on both outcomes from runc's: see differences()

    def fields(self) -> dict[str, object]:
        out: dict[str, object] = {"ran": self.ran, "exit": self.rc, "leftover": self.leftovers}
        if not self.ran and self.exec_failed:
            out["error"] = self.error
        for name, lines in self.report.items():
            out[f"section:{name}"] = lines
        for name, text in self.hooks.items():
            out[f"hook:{name}"] = text
        return out


def error_kind(stderr: str) -> str:
    """The class an engine would read from the error (docker: 127 or 126, else 125).
    runc logs warnings too ("lstat : no such file or directory"): only its error counts."""
    errors = [line for line in stderr.splitlines() if "level=error" in line]
    if errors:
        stderr = errors[-1]
    if "executable file not found in $PATH" in stderr:
        return "not found in $PATH"
    if "no such file or directory" in stderr:
        return "no such file or directory"
    if "permission denied" in stderr:
        return "permission denied"
    return "other"


def _replace(text: str, replacements: dict[str, str]) -> str:
    for old, new in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(old, new)
    return text


_NS_INODE = re.compile(r"(\w+):\[(\d+)\]")


def _ns_lines(lines: list[str], labels: dict[str, str]) -> list[str]:
    return [_NS_INODE.sub(lambda m: labels.get(m.group(0), "new"), line) for line in lines]


def _state(text: str) -> str:
    """A hook's stdin, the state JSON, with the pid out."""
    try:
        state = json.loads(text)
    except ValueError:
        return text
    if isinstance(state, dict) and isinstance(state.get("pid"), int) and state["pid"] > 0:
        state["pid"] = "<pid>"
    if isinstance(state, dict) and "ociVersion" in state:
        state["ociVersion"] = "<the runtime's spec version>"  # runc: 1.0.2-dev
    return json.dumps(state, sort_keys=True)


def normalise(raw: subprocess.CompletedProcess, hooks: dict[str, str], leftovers: list[str],
              replacements: dict[str, str], ns_labels: dict[str, str]) -> Outcome:
    stdout = _replace(raw.stdout, replacements)
    stderr = _replace(raw.stderr, replacements)
    report = sections(stdout)
    ran = BEGIN in stdout.splitlines()
    finished = END in stdout.splitlines()
    report.pop("begin", None)
    report.pop("end", None)
    if "mountinfo" in report:
        report["mountinfo"] = normal_mountinfo(report["mountinfo"])
    if "dev" in report:
        report["dev"] = normal_dev(report["dev"])
    if "ns" in report:
        report["ns"] = _ns_lines(report["ns"], ns_labels)
    norm_hooks = {}
    for name, text in hooks.items():
        text = _replace(text, replacements)
        norm_hooks[name] = _state(text) if name.endswith(".state") else text
    return Outcome(rc=raw.returncode, ran=ran, finished=finished, report=report,
                   error=error_kind(stderr), stderr=stderr, stdout=stdout, hooks=norm_hooks,
                   leftovers=leftovers)


@dataclass(frozen=True)
class Difference:
    field: str
    ours: object
    theirs: object

    def __str__(self) -> str:
        return f"{self.field}:\n  pyruntime: {self.ours!r}\n  runc:      {self.theirs!r}"


def differences(ours: Outcome, theirs: Outcome) -> list[Difference]:
    """Every compared field whose values differ.  When only one side ran, "ran" (and the
    exit status) are the difference; the report of the side that ran has nothing to be
    compared with."""
    exec_failed = not theirs.ran and 'exec: \\"' in theirs.stderr
    ours.exec_failed = theirs.exec_failed = exec_failed
    a, b = ours.fields(), theirs.fields()
    if ours.ran != theirs.ran:
        keys = ["ran", "exit", "leftover"]
    else:
        keys = sorted(set(a) | set(b), key=lambda k: (k.count(":"), k))
    return [Difference(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]

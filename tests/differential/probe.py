"""The probe: a busybox sh script the container runs to report what it sees of itself, in
`## SECTION` blocks (support/runc.py's sections()), then exits with a chosen status.

It is written for the config it runs in (the sysctls, device paths and mount destinations
to look at), so it is part of the generated config and the allow list sees it too.
"""

from __future__ import annotations

import shlex
from typing import Any

from support.config import RUNC_SPEC

DEFAULT_DESTS = {m["destination"] for m in RUNC_SPEC["mounts"]}

BEGIN = "## begin"
END = "## end"

_FIXED = r"""
exec 2>&1
echo '## begin'
echo '## args'; for a in "$0" "$@"; do echo "[$a]"; done
echo '## id'; id
echo '## status'; grep -E '^(Cap|NoNewPrivs|Seccomp|Umask|Groups)' /proc/self/status
echo '## umask'; umask
echo '## env'; env | sort
echo '## cwd'; pwd
echo '## hostname'; hostname; cat /proc/sys/kernel/domainname
echo '## limits'; cat /proc/self/limits
echo '## oom'; cat /proc/self/oom_score_adj
echo '## session'
read -r _pid _comm _state _ppid pgrp sid _rest < /proc/$$/stat
[ "$$" = 1 ] && echo pid1 || echo not-pid1
[ "$pgrp" = "$$" ] && echo pgrp-leader || echo not-pgrp-leader
[ "$sid" = "$$" ] && echo session-leader || echo not-session-leader
echo '## ns'; for f in /proc/self/ns/*; do echo "${f##*/} $(readlink "$f")"; done
echo '## idmaps'; cat /proc/self/uid_map /proc/self/gid_map
echo '## fds'; ls /proc/self/fd
echo '## dev'; ls -l /dev
"""

_ACTIONS = r"""
echo '## actions'
touch /probe-root; echo "touch-root $?"
mkdir /tmp/probe-dir; echo "mkdir-tmp $?"
chown 1:1 /tmp/probe-dir; echo "chown $?"
chmod 4755 /tmp/probe-dir; echo "chmod $?"
mknod /tmp/probe-null c 1 3; echo "mknod $?"
echo x > /dev/null; echo "write-null $?"
head -c 1 /dev/zero > /dev/null; echo "read-zero $?"
kill -0 1; echo "kill-1 $?"
rm -rf /tmp/probe-dir /tmp/probe-null /probe-root
echo '## mountinfo'; cat /proc/self/mountinfo
echo '## end'
"""


def probe_script(config: dict[str, Any], exit_code: int) -> str:
    """The probe for *config*, ending with `exit exit_code`."""
    q = shlex.quote
    linux = config.get("linux", {})
    paths = sorted({d["path"] for d in linux.get("devices", [])}
                   | {m["destination"] for m in config.get("mounts", [])
                      if m["destination"] not in DEFAULT_DESTS})
    lines = [_FIXED]
    lines.append("echo '## paths'")
    lines += [f"stat -c '%A %u %g %F %t:%T %n' {q(p)}" for p in paths]
    lines.append("echo '## sysctl'")
    lines += [f"echo {q(k)}=$(cat {q('/proc/sys/' + k.replace('.', '/'))})"
              for k in sorted(linux.get("sysctl", {}))]
    lines.append(_ACTIONS)
    lines.append(f"exit {exit_code}")
    return "\n".join(line.strip("\n") for line in lines) + "\n"

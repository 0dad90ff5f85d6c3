#!/usr/bin/env bash
# systemd lane: the cgroup v2 lane's guest (integration/cgroupv2/) with systemd 252 as
# PID 1, for the systemd cgroup driver (--systemd-cgroup).  Same CLI and exit status:
#
#   integration/systemd/run.sh                  # pytest -m systemd tests/ integration/{containerd,podman}
#   integration/systemd/run.sh -- CMD ARGS...   # any command, run with cwd = repo
#   integration/systemd/run.sh --prepare-only   # install/download/build, do not boot
#   --timeout SECONDS                            # kill qemu after that (default 1200)
#   PYRT_SYSTEMD_UNIFIED=0 integration/systemd/run.sh ...   # systemd on cgroup v1 (hybrid)
#
# The kernel, modules and initramfs are the cgroup v2 lane's (one cache, build/cgroupv2);
# the console log is build/systemd/console.log.  See README.md here.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYRT_LANE=systemd exec "$HERE/../cgroupv2/run.sh" "$@"

#!/usr/bin/env bash
# `make bench`: pyruntime vs runc vs crun, side by side.  See bench.py.
#
#   integration/bench/run.sh                # every scenario (a)-(g), ~15 min
#   integration/bench/run.sh b e f          # some of them
#   BENCH_RUNS=10 BENCH_G_COUNT=200 integration/bench/run.sh g
#
# crun 1.8.1 refuses this hybrid host because the cgroup2 mount lists a controller
# (hugetlb).  The whole benchmark therefore runs in a private mount namespace where an
# empty file hides /sys/fs/cgroup/unified/cgroup.controllers, so all three runtimes run
# under the same conditions (pyruntime and runc do not read that file).  The host's
# mounts are untouched.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

PY=.venv/bin/python
[ -x "$PY" ] || { echo "bench: run 'make setup' first" >&2; exit 1; }
for tool in hyperfine runc crun unshare busybox; do
    command -v "$tool" >/dev/null || { echo "bench: $tool not found (make setup)" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench: needs root" >&2; exit 1; }

mkdir -p build/bench
# Byte-code up to date, as an installed package has it (PYTHONDONTWRITEBYTECODE may be set
# here, and files others just edited would otherwise be compiled on every call).
"$PY" -m compileall -q -j0 pyruntime >/dev/null
: >build/bench/empty-controllers
export BENCH_REPO="$PWD"
exec unshare --mount --propagation private -- sh -c '
    mount --bind build/bench/empty-controllers /sys/fs/cgroup/unified/cgroup.controllers
    exec "$0" integration/bench/bench.py "$@"' "$PY" "$@"

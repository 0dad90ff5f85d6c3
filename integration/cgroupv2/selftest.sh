#!/bin/bash
# Self-test of the cgroup v2 lane, run inside the guest by `run.sh --selftest` (cwd = repo).
# Proves: pure cgroup2 with memory and pids enabled, a child cgroup with limits that are
# enforced, the read-only 9p root under a tmpfs overlay, the read-write repo share, and
# the repo's venv python importing pyruntime (and its native extension).
set -u
fails=0 checks=0
ok() { checks=$((checks + 1)); echo "selftest: ok   - $*"; }
bad() { checks=$((checks + 1)); fails=$((fails + 1)); echo "selftest: FAIL - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
t0=$(cut -d' ' -f1 /proc/uptime)

[ "${PYRT_CGROUPV2_VM:-}" = 1 ] || { echo "selftest: not inside the cgroup v2 VM"; exit 2; }
echo "selftest: kernel $(uname -r), cwd $(pwd)"
CG=/sys/fs/cgroup

# --- the cgroup2 hierarchy
check "/sys/fs/cgroup is cgroup2" [ "$(stat -f -c %T $CG)" = cgroup2fs ]
grep -E ' /sys/fs/cgroup ' /proc/self/mounts | sed 's/^/selftest:   /'
ctrls=$(cat $CG/cgroup.controllers)
echo "selftest:   cgroup.controllers: $ctrls"
echo "selftest:   cgroup.subtree_control: $(cat $CG/cgroup.subtree_control)"
for c in memory pids cpu io cpuset; do
	check "controller $c available" grep -qw "$c" $CG/cgroup.controllers
	check "controller $c enabled for children" grep -qw "$c" $CG/cgroup.subtree_control
done
check "no v1 hierarchy mounted" bash -c '! grep -q " cgroup " /proc/self/mounts'
check "we are in the root cgroup" [ "$(cat /proc/self/cgroup)" = "0::/" ]

# --- a child cgroup with limits
T=$CG/pyrt-selftest
rmdir $T/leaf $T 2>/dev/null
check "mkdir child cgroup" mkdir $T
check "child has memory.max and pids.max" [ -f $T/memory.max -a -f $T/pids.max ]
check "set memory.max=64M" bash -c "echo 64M > $T/memory.max"
check "memory.max reads back 67108864" [ "$(cat $T/memory.max)" = 67108864 ]
check "set memory.swap.max=0" bash -c "echo 0 > $T/memory.swap.max"
check "set pids.max=8" bash -c "echo 8 > $T/pids.max"
check "set cpu.max" bash -c "echo '50000 100000' > $T/cpu.max"
out=$(sh -c "echo \$\$ > $T/cgroup.procs && cat /proc/self/cgroup")
check "a process moved via cgroup.procs sees 0::/pyrt-selftest ($out)" [ "$out" = "0::/pyrt-selftest" ]
# A shell in the cgroup forks 10 sleepers; with pids.max=8 some forks must fail.
( bash -c "echo \$\$ > $T/cgroup.procs; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 60 & done 2>/dev/null; wait"; exit $? ) 2>/dev/null &
sleep 2
n=$(cat $T/pids.current)
echo 1 > $T/cgroup.kill
wait
check "pids.max enforced (pids.current $n <= 8)" [ "$n" -le 8 ]
check "pids.events counts the refused forks" grep -q '^max [1-9]' $T/pids.events
echo "selftest:   pids.events: $(tr '\n' ' ' < $T/pids.events)"
# 200 MiB in a 64 MiB cgroup without swap: the OOM killer must take it.
# (the subshells keep bash's "Killed" job notices off the console)
( .venv/bin/python -c "
import os
open('$T/cgroup.procs', 'w').write(str(os.getpid()))
b = bytearray(200 << 20)
for i in range(0, len(b), 4096): b[i] = 1
print('selftest:   allocation survived (limit NOT enforced)')
"; exit $? ) 2>/dev/null
rc=$?
check "memory.max enforced: 200 MiB in 64 MiB is OOM-killed (rc $rc)" [ $rc -eq 137 ]
check "memory.events counts the oom_kill" grep -q '^oom_kill [1-9]' $T/memory.events
echo "selftest:   memory.events: $(tr '\n' ' ' < $T/memory.events)"
check "remove child cgroup" rmdir $T

# --- filesystems
root_fs=$(awk '$2 == "/" {print $3}' /proc/self/mounts | tail -n1)
check "/ is an overlay ($root_fs)" [ "$root_fs" = overlay ]
check "overlay lower is the read-only 9p host root" bash -c "grep -qE '^hostroot /lower 9p ro,' /run/pyrt-cgroupv2/stage1-mounts &&
	grep -qE '^overlay / overlay .*lowerdir=/lower,' /proc/self/mounts"
grep -E '^(hostroot|overlay) ' /run/pyrt-cgroupv2/stage1-mounts | sed 's/^/selftest:   /' 
check "write to /etc lands in the tmpfs overlay" bash -c 'echo guest > /etc/pyrt-cgroupv2-selftest && [ "$(cat /etc/pyrt-cgroupv2-selftest)" = guest ]'
check "repo is a read-write 9p share at $(pwd)" grep -qE "^work $(pwd) 9p rw" /proc/self/mounts
check "write into the repo share" bash -c 'echo "$(uname -r)" > build/cgroupv2/selftest-marker'
for m in /proc /sys /dev /dev/pts /dev/shm /tmp /run; do
	check "$m mounted" grep -qE "^[^ ]+ $m " /proc/self/mounts
done

# --- the venv
ver=$(.venv/bin/python -c 'import sys, pyruntime; print(sys.version.split()[0], pyruntime.__file__)' 2>&1)
check "venv python imports pyruntime ($ver)" .venv/bin/python -c 'import pyruntime'
check "venv python imports pyruntime._native" .venv/bin/python -c 'import pyruntime._native'
check "pytest is importable" .venv/bin/python -c 'import pytest'

t1=$(cut -d' ' -f1 /proc/uptime)
echo "selftest: $checks checks in $(awk "BEGIN{print $t1 - $t0}")s (guest), mem: $(awk '/MemTotal|MemAvailable/{printf "%s %d MiB  ", $1, $2/1024}' /proc/meminfo)"
echo "selftest: $((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]

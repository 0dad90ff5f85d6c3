#!/usr/bin/env bash
# cgroup v2 lane: boot Debian's 6.1 kernel under QEMU TCG with a pure cgroup2 hierarchy
# (all controllers enabled) and run a job there against this repo.  See README.md here.
#
#   integration/cgroupv2/run.sh                  # pytest -m "cgroupv2 or criu" tests/ integration/{podman,containerd}
#   integration/cgroupv2/run.sh --selftest       # proves the lane (selftest.sh)
#   integration/cgroupv2/run.sh -- CMD ARGS...   # any command, run with cwd = repo
#   integration/cgroupv2/run.sh --prepare-only   # install/download/build, do not boot
#   --timeout SECONDS                            # kill qemu after that (default 1200)
#
# Environment: PYRT_CGV2_TIMEOUT (seconds), PYRT_CGV2_MEM (default 2G), PYRT_CGV2_SMP
# (default 1), PYRT_CGV2_CACHE (default <repo>/build/cgroupv2), PYRT_CGV2_WORKCACHE (9p
# cache= mode of the repo share, default loose), PYRT_CGV2_KERNEL (a
# linux-image-6.1.0-N-amd64 package name; default: the newest apt knows).
# PYRT_LANE=systemd (set by integration/systemd/run.sh): the guest's PID 1 is systemd
# (init's stage 1 hands over to /lib/systemd/systemd, the job runs as a unit) and the
# default job is `pytest -m systemd`; the kernel/initramfs cache is the same.
#
# The exit status is the job's (read from the PYRT-EXIT-CODE= line the guest prints);
# 124 on timeout, 125 when the guest never reported one.  Nothing on the host is mounted,
# unmounted or moved between cgroups; the only process killed is our own qemu, by pid.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LANE=${PYRT_LANE:-cgroupv2}
[[ $LANE == cgroupv2 || $LANE == systemd ]] || { echo "PYRT_LANE=$LANE: cgroupv2 or systemd" >&2; exit 125; }
JOBDIR=$REPO/build/$LANE               # must be inside the work share (the repo)
CACHE=${PYRT_CGV2_CACHE:-$REPO/build/cgroupv2}
TIMEOUT=${PYRT_CGV2_TIMEOUT:-1200}
MEM=${PYRT_CGV2_MEM:-2G}
SMP=${PYRT_CGV2_SMP:-1}
WORKCACHE=${PYRT_CGV2_WORKCACHE:-loose}  # 9p cache= mode of the repo share (loose: 2x faster imports)
PACKAGES=(qemu-system-x86 busybox-static cpio xz-utils gzip criu podman conmon containerd)
# the systemd lane boots systemd and dbus in the guest (their files come from the host)
[[ $LANE != systemd ]] || PACKAGES+=(systemd dbus)
# Modules the guest needs; their dependencies are added from each .ko's modinfo.  After
# 9p and overlay come CRIU's (criu check needs the *_diag sockets; a dump of a network
# namespace needs nf_tables for its lock and nf_conntrack_netlink, else "-22 reported
# by netlink"; crc32c_generic must precede nf_tables).  A change to this list rebuilds
# the kernel cache (modules.wanted records what it was built with).
WANTED_MODULES=(virtio_pci 9pnet_virtio 9p overlay
	unix_diag inet_diag tcp_diag udp_diag raw_diag af_packet_diag netlink_diag veth tun
	crc32c_generic nf_tables nft_compat xt_mark ip_tables iptable_filter ip6_tables
	ip6table_filter nf_conntrack_netlink autofs4)

log() { echo "$LANE: $*" >&2; }
fail() { echo "$LANE: ERROR: $*" >&2; exit 125; }

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

mode=pytest prepare_only=0 cmd=()
while [[ $# -gt 0 ]]; do
	case $1 in
		--selftest) mode=selftest ;;
		--prepare-only) prepare_only=1 ;;
		--timeout) TIMEOUT=$2; shift ;;
		--timeout=*) TIMEOUT=${1#*=} ;;
		-h|--help) usage; exit 0 ;;
		--) shift; mode=cmd; cmd=("$@"); break ;;
		*) usage >&2; fail "unknown argument: $1" ;;
	esac
	shift
done
[[ $mode != cmd || ${#cmd[@]} -gt 0 ]] || fail "nothing after --"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || fail "bad timeout: $TIMEOUT"
[[ $(id -u) -eq 0 ]] || fail "run as root (installs packages, needs qemu's 9p as root)"
# The repo path travels on the kernel command line, one word.
[[ $REPO =~ ^/[A-Za-z0-9._/+-]+$ ]] || fail "repo path '$REPO' has characters the guest cmdline cannot carry"

# ---------------------------------------------------------------- packages
apt_updated=0
apt_update_once() {
	if [[ $apt_updated -eq 0 ]]; then
		log "apt-get update"
		apt-get update -q >&2
		apt_updated=1
	fi
}
ensure_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
			|| missing+=("$p")
	done
	if [[ ${#missing[@]} -gt 0 ]]; then
		apt_update_once
		log "apt-get install ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
	fi
}

# ---------------------------------------------------------------- guest kernel
newest_kernel_pkg() {
	apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null \
		| awk '{print $1}' | sort -V | tail -n1
}
candidate_version() {
	apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" {print $2}'
}

# Uncompressed ELF vmlinux from a bzImage: its payload is an XZ stream (Debian builds with
# CONFIG_KERNEL_XZ); find the stream's magic and decompress just that one stream.
extract_vmlinux() { # extract_vmlinux VMLINUZ OUT
	local off
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$1" | head -n1 | cut -d: -f1)
	[[ -n $off ]] || fail "no XZ payload in $1"
	# (tail gets SIGPIPE when xz stops after the stream: only xz's status counts)
	{ tail -c +$((off + 1)) "$1" || true; } | xz -dc --single-stream > "$2.tmp" || fail "xz -d of $1 failed"
	[[ $(head -c4 "$2.tmp" | od -An -c | tr -d ' ') == '177ELF' ]] || fail "$1: payload is not ELF"
	mv "$2.tmp" "$2"
}

# Copy WANTED_MODULES and their dependencies (modinfo 'depends=') into DEST as flat
# NAME.ko files and write DEST/modules.list in load order.  Built-in ones are skipped.
declare -A MODPATH=() BUILTIN=() SEEN=()
MOD_ORDER=()
add_module() { # add_module NAME MODROOT DEST
	local n=${1//-/_} p deps d
	[[ -z ${SEEN[$n]:-} ]] || return 0
	SEEN[$n]=1
	if [[ -n ${BUILTIN[$n]:-} ]]; then log "module $n: built in"; return 0; fi
	p=${MODPATH[$n]:-}
	[[ -n $p ]] || fail "module $n is neither built in nor in modules.order"
	deps=$(tr '\0' '\n' < "$2/$p" | sed -n 's/^depends=//p' | head -n1)
	local IFS=,
	for d in $deps; do [[ -z $d ]] || add_module "$d" "$2" "$3"; done
	cp "$2/$p" "$3/$n.ko"
	MOD_ORDER+=("$n.ko")
}
collect_modules() { # collect_modules MODROOT DEST
	local p n
	while read -r p; do n=$(basename "$p"); n=${n%%.ko*}; MODPATH[${n//-/_}]=$p; done < "$1/modules.order"
	while read -r p; do n=$(basename "$p"); n=${n%%.ko*}; BUILTIN[${n//-/_}]=1; done < "$1/modules.builtin"
	for n in "${WANTED_MODULES[@]}"; do add_module "$n" "$1" "$2"; done
	printf '%s\n' "${MOD_ORDER[@]}" > "$2/modules.list"
}

prepare_kernel() { # sets KDIR
	local pkg ver cached
	pkg=${PYRT_CGV2_KERNEL:-$(newest_kernel_pkg)}
	ver=""
	[[ -z $pkg ]] || ver=$(candidate_version "$pkg")
	if [[ -z $pkg || -z $ver || $ver == "(none)" ]]; then
		# No package lists (fresh machine): use a cached kernel if there is one.
		cached=$(ls -d "$CACHE"/kernel/linux-image-*/ 2>/dev/null | sort -V | tail -n1 || true)
		if [[ -z ${PYRT_CGV2_KERNEL:-} && -n $cached && -f $cached/.done
		      && $(cat "$cached/modules.wanted" 2>/dev/null) == "${WANTED_MODULES[*]}" ]]; then
			KDIR=${cached%/}; log "using cached kernel $(basename "$KDIR") (no apt lists)"; return
		fi
		apt_update_once
		pkg=${PYRT_CGV2_KERNEL:-$(newest_kernel_pkg)}
		[[ -n $pkg ]] || fail "no linux-image-6.1.0-N-amd64 package in apt"
		ver=$(candidate_version "$pkg")
		[[ -n $ver && $ver != "(none)" ]] || fail "$pkg has no installable version"
	fi
	KDIR=$CACHE/kernel/${pkg}_${ver//:/%}
	if [[ -f $KDIR/.done && $(cat "$KDIR/modules.wanted" 2>/dev/null) == "${WANTED_MODULES[*]}" ]]; then
		log "kernel $pkg $ver: cached"; return
	fi

	log "kernel $pkg $ver: downloading and extracting (nothing under /boot is touched)"
	rm -rf "$KDIR" && mkdir -p "$KDIR/modules"
	local tmp; tmp=$(mktemp -d "$CACHE/tmp.XXXXXX"); TMPDIRS+=("$tmp")
	chown _apt "$tmp" 2>/dev/null || true     # lets apt download without its sandbox warning
	(cd "$tmp" && apt-get download -q "$pkg=$ver" >&2) || fail "apt-get download $pkg=$ver"
	dpkg-deb -x "$tmp"/*.deb "$tmp/x" || fail "dpkg-deb -x"
	local kver; kver=$(basename "$(ls -d "$tmp"/x/lib/modules/*/ | head -n1)")
	cp "$tmp/x/boot/config-$kver" "$KDIR/config"
	extract_vmlinux "$tmp/x/boot/vmlinuz-$kver" "$KDIR/vmlinux"
	collect_modules "$tmp/x/lib/modules/$kver" "$KDIR/modules"
	grep -E '^CONFIG_(NETFS_SUPPORT|FSCACHE|NET_9P|NET_9P_VIRTIO|9P_FS|VIRTIO|VIRTIO_PCI|VIRTIO_PCI_LIB|VIRTIO_PCI_LIB_LEGACY|OVERLAY_FS|PVH|CGROUPS|MEMCG|CGROUP_PIDS)=' \
		"$KDIR/config" | tr '\n' ' ' | sed 's/^/cgroupv2: config: /; s/$/\n/' >&2
	log "modules (load order): $(tr '\n' ' ' < "$KDIR/modules/modules.list")"
	echo "$kver" > "$KDIR/kver"
	echo "${WANTED_MODULES[*]}" > "$KDIR/modules.wanted"
	rm -rf "$tmp"
	touch "$KDIR/.done"
}

# ---------------------------------------------------------------- initramfs
build_initramfs() { # sets INITRD
	INITRD=$KDIR/initramfs.cpio.gz
	local bb; bb=$(command -v busybox || echo /bin/busybox)
	if [[ -f $INITRD && $INITRD -nt $HERE/init && $INITRD -nt $bb && $INITRD -nt $KDIR/.done ]]; then
		log "initramfs: cached"; return
	fi
	file -L "$bb" 2>/dev/null | grep -q 'statically linked' \
		|| ldd "$bb" 2>&1 | grep -q 'not a dynamic executable' \
		|| fail "$bb is not statically linked (install busybox-static)"
	local st; st=$(mktemp -d "$CACHE/initramfs.XXXXXX"); TMPDIRS+=("$st")
	mkdir -p "$st/bin" "$st/modules"
	cp "$bb" "$st/bin/busybox"
	install -m 0755 "$HERE/init" "$st/init"
	cp "$KDIR"/modules/*.ko "$KDIR/modules/modules.list" "$st/modules/"
	(cd "$st" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) \
		| gzip -1 > "$INITRD.tmp"
	mv "$INITRD.tmp" "$INITRD"
	rm -rf "$st"
	log "initramfs: built ($(du -h "$INITRD" | cut -f1))"
}

# ---------------------------------------------------------------- main
qpid="" tpid="" JOB="" LOG="" TMPDIRS=()
cleanup() {
	# Only our own children, by pid.
	[[ -z $qpid ]] || kill "$qpid" 2>/dev/null || true
	[[ -z $tpid ]] || kill "$tpid" 2>/dev/null || true
	[[ -z $JOB ]] || rm -f "$JOB"
	[[ -z $LOG || ! -f $LOG ]] || mv -f "$LOG" "$JOBDIR/console.log"
	[[ ${#TMPDIRS[@]} -eq 0 ]] || rm -rf "${TMPDIRS[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$SECONDS
mkdir -p "$CACHE" "$JOBDIR"
exec 9> "$CACHE/.lock"
flock 9
ensure_packages
prepare_kernel
build_initramfs
flock -u 9
t_prep=$((SECONDS - t0))
log "prepared in ${t_prep}s (kernel dir $KDIR)"
[[ $prepare_only -eq 0 ]] || exit 0

JOB=$JOBDIR/job.$$.sh
LOG=$JOBDIR/console.$$.log            # renamed to console.log at the end
{
	echo "# written by integration/cgroupv2/run.sh ($LANE lane); runs in the guest with cwd = the repo"
	echo "cd $(printf '%q' "$REPO") || exit 125"
	case $mode in
		pytest) if [[ $LANE == systemd ]]; then   # the driver's tests, containerd and podman on it
				echo 'exec .venv/bin/python -m pytest -p no:cacheprovider -m systemd -ra tests/ integration/containerd integration/podman'
			else
				echo "exec .venv/bin/python -m pytest -m 'cgroupv2 or criu' -ra tests/ integration/podman integration/containerd"
			fi ;;
		selftest) echo "exec /bin/bash $(printf '%q' "$HERE/selftest.sh")" ;;
		cmd) printf 'exec'; printf ' %q' "${cmd[@]}"; echo ;;
	esac
} > "$JOB"
log "job: $(tail -n1 "$JOB")"

APPEND="console=ttyS0 panic=-1 loglevel=4 mitigations=off rdinit=/init pyrt_work=$REPO pyrt_job=$JOB pyrt_workcache=$WORKCACHE"
if [[ $LANE == systemd ]]; then
	APPEND+=" pyrt_lane=systemd systemd.unified_cgroup_hierarchy=${PYRT_SYSTEMD_UNIFIED:-1} systemd.unit=multi-user.target"
	APPEND+=" systemd.show_status=error"
fi
QEMU=(qemu-system-x86_64 -accel tcg -cpu max -smp "$SMP" -m "$MEM"
	-nodefaults -display none -serial stdio -no-reboot
	-kernel "$KDIR/vmlinux" -initrd "$INITRD" -append "$APPEND"
	-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
	-virtfs "local,path=$REPO,mount_tag=work,security_model=none,multidevs=remap")


: > "$LOG"
t_boot=$SECONDS
"${QEMU[@]}" < /dev/null >> "$LOG" 2>&1 &
qpid=$!
tail -n +1 -f --pid="$qpid" "$LOG" &
tpid=$!

timed_out=0 hwm_kb=0
while :; do
	st=$(awk '{print $3}' "/proc/$qpid/stat" 2>/dev/null || echo gone)
	[[ $st != Z && $st != gone ]] || break
	h=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$qpid/status" 2>/dev/null || true)
	[[ -z $h || $h -le $hwm_kb ]] || hwm_kb=$h
	if (( SECONDS - t_boot >= TIMEOUT )); then
		log "TIMEOUT after ${TIMEOUT}s: killing qemu (pid $qpid)"
		kill "$qpid" 2>/dev/null || true
		sleep 3
		kill -9 "$qpid" 2>/dev/null || true
		timed_out=1
		break
	fi
	sleep 1
done
qrc=0; wait "$qpid" || qrc=$?
qpid=""
wait "$tpid" 2>/dev/null || true
tpid=""
t_vm=$((SECONDS - t_boot))

up() { tr -d '\r' < "$LOG" | sed -n "s/^pyrt-cgroupv2: $1.*(uptime \([0-9.]*\)s)\$/\1/p" | tail -n1; }
code=$(tr -d '\r' < "$LOG" | sed -n 's/^PYRT-EXIT-CODE=\([0-9]\{1,3\}\)$/\1/p' | tail -n1)
echo
log "summary: prepare ${t_prep}s; vm wall ${t_vm}s (qemu exit $qrc); guest uptime at init $(up 'initramfs up')s," \
	"job start $(up 'running job')s, job end $(up 'job finished')s; qemu peak RSS $((hwm_kb / 1024)) MiB; log $JOBDIR/console.log"
if [[ $timed_out -eq 1 ]]; then
	log "FAILED: timed out after ${TIMEOUT}s"
	exit 124
fi
if [[ -z $code ]]; then
	log "FAILED: the guest printed no PYRT-EXIT-CODE line (see $JOBDIR/console.log)"
	exit 125
fi
log "job exit code $code"
exit "$code"

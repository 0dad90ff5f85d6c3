#!/usr/bin/env bash
# `make integration`: the real clients driving pyruntime -- containerd 1.6 through its
# runc shim (integration/containerd), podman 4.3 through conmon (integration/podman) and
# Docker 20.10 through a private dockerd (integration/docker). Installs the Debian packages
# they need when missing. Root only. Arguments, if any, are passed to pytest instead of the
# three suites (e.g. integration/podman -k exec).
# Last line: "integration: N passed, M failed, K skipped". Kept in build/integration/:
# the pytest log, the argv each client sent (<client>-argv.log), containerd's and
# dockerd's logs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" != 0 ]; then
    echo "integration: needs root (it starts containerd and runs containers)" >&2
    exit 1
fi

[ -x .venv/bin/python ] || { echo "integration: run 'make setup' first" >&2; exit 1; }

PACKAGES=(containerd podman conmon docker.io)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
        || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "integration: apt-get install ${missing[*]}"
    # the suites start private daemons; a host dockerd that the install started (where
    # /usr/sbin/policy-rc.d does not forbid it) is stopped again, by its pid file
    host_dockerd=/run/docker.pid
    [ -e "$host_dockerd" ] && host_dockerd=
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    if [ -n "$host_dockerd" ] && [ -s "$host_dockerd" ]; then
        echo "integration: stopping the dockerd the install started (pid $(cat "$host_dockerd"))"
        kill "$(cat "$host_dockerd")" || true
    fi
fi

mkdir -p build/integration
log=build/integration/pytest.log
if [ "$#" -eq 0 ]; then
    set -- integration/containerd integration/podman integration/docker
fi
start=$SECONDS
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
summary=$( { grep -E '^(=+ )?[0-9]+ [a-z].* in [0-9.]+s' "$log" || true; } | tail -n1)
count() { echo "$summary" | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+' || echo 0; }
passed=$(count passed)
failed=$(( $(count failed) + $(count error) ))
skipped=$(count skipped)
if [ "$rc" -eq 5 ]; then echo "integration: pytest ran no test" >&2; rc=1; fi
echo "integration: $passed passed, $failed failed, $skipped skipped ($((SECONDS - start)) s)"
exit "$rc"

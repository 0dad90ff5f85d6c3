#!/usr/bin/env bash
# A first container: build a busybox-static bundle in build/demo/ and run it in the
# foreground.  The container prints its hostname, its id, its pid and its mounts.
# Exit status: the container's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=.venv/bin/python
# DEMO_RUNTIME="crun --cgroup-manager=disabled" runs the same demo under another runtime.
read -r -a RT <<<"${DEMO_RUNTIME:-.venv/bin/pyruntime} --root build/demo-root"
BUNDLE=build/demo
ID="demo-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"

[ -x "$PY" ] || { echo "demo: run 'make setup' first" >&2; exit 1; }
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || { echo "demo: busybox not found (apt-get install busybox-static)" >&2; exit 1; }

cleanup() { "${RT[@]}" delete --force "$ID" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# rootfs: a static busybox and one symlink per applet.
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/rootfs"/{bin,proc,sys,dev,tmp,etc,root}
cp "$BUSYBOX" "$BUNDLE/rootfs/bin/busybox"
for applet in $("$BUNDLE/rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$BUNDLE/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$BUNDLE/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$BUNDLE/rootfs/etc/group"

# config.json: the runtime's default, then the demo's process.
"${RT[@]}" spec --bundle "$BUNDLE"
"$PY" - "$BUNDLE/config.json" "$ID" <<'PYEOF'
import json, sys
path, cid = sys.argv[1], sys.argv[2]
with open(path) as f:
    config = json.load(f)
process = config.setdefault("process", {})
process["terminal"] = False
process["args"] = [
    "sh", "-c",
    "echo hostname: $(hostname); echo id: $CONTAINER_ID; echo pid: $$; cat /proc/self/mountinfo",
]
env = [e for e in process.get("env", []) if not e.startswith("CONTAINER_ID=")]
process["env"] = env + [f"CONTAINER_ID={cid}"]
with open(path, "w") as f:
    json.dump(config, f, indent=2)
PYEOF

echo "demo: running container $ID from $BUNDLE" >&2
set +e
"${RT[@]}" run --bundle "$BUNDLE" "$ID"
status=$?
set -e
echo "demo: container $ID exited with status $status" >&2
exit "$status"

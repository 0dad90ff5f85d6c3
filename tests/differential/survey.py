"""Survey mode: run many generated configs and group every difference, instead of stopping
at the first (as the test does).  Run as root from tests/:

    ../.venv/bin/python -m differential.survey --examples 500 --seed 1 --out /tmp/survey

Writes OUT/summary.txt (one line per field and verdict, with counts) and, per unexplained
field, OUT/<field>-<n>.txt with the config and both outcomes of its first few cases.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

from differential import allowlist
from differential.compare import Outcome, differences
from differential.harness import FuzzHost
from differential.strategies import configs, without_local_constants
from support.rootfs import build_busybox_rootfs
from support.runtime import Runtime


def _dump(o: Outcome) -> str:
    return (f"rc {o.rc} ran {o.ran}\n--- stdout ---\n{o.stdout}\n--- stderr ---\n{o.stderr}\n"
            f"--- hooks ---\n{json.dumps(o.hooks, indent=1)}\nleftovers {o.leftovers}\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--keep", type=int, default=3, help="cases kept per unexplained field")
    ap.add_argument("--failures", action="store_true", help="keep configs neither ran")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="pyrt-fuzz-survey-"))
    token = secrets.token_hex(8)
    root = base / "root"
    root.mkdir(mode=0o700)
    runtime = Runtime(root=root, workdir=base, token=token)
    rootfs = build_busybox_rootfs(base / "busybox" / "rootfs")
    host = FuzzHost(base=base / "fuzz", runtime=runtime, token=token)
    host.base.mkdir()
    host.setup(rootfs)
    counts: Counter[tuple[str, str]] = Counter()
    kept: dict[str, int] = defaultdict(int)
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()

    @settings(max_examples=args.examples, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @seed(args.seed)
    @given(config=configs())
    def one(config: dict) -> None:
        ours, theirs = host.run_case(config)
        outcomes["both ran" if ours.ran and theirs.ran else
                 "neither ran" if not ours.ran and not theirs.ran else "one ran"] += 1
        if not theirs.ran:
            why = [x for x in theirs.stderr.splitlines() if "level=error" in x]
            text = why[-1] if why else (theirs.stderr[-200:] or
                                        f"(rc {theirs.rc}) {theirs.stdout[:100]!r}")
            reasons[re.sub(r'^time="[^"]*" ', "", text)[:160]] += 1
            if args.failures and outcomes["neither ran"] <= 40:
                (args.out / f"neither-{host.count}.txt").write_text(
                    json.dumps(config, indent=1) + "\n=== pyruntime ===\n" + _dump(ours)
                    + "\n=== runc ===\n" + _dump(theirs))
        for d in differences(ours, theirs):
            entries = allowlist.accepted(config, d, ours, theirs)
            verdict = " + ".join(e.name for e in entries) or "UNEXPLAINED"
            counts[(d.field, verdict)] += 1
            if not entries and kept[d.field] < args.keep:
                kept[d.field] += 1
                name = d.field.replace("/", "_").replace(":", "-")
                (args.out / f"{name}-{kept[d.field]}.txt").write_text(
                    json.dumps(config, indent=1) + "\n\n" + str(d) + "\n\n=== pyruntime ===\n"
                    + _dump(ours) + "\n=== runc ===\n" + _dump(theirs))
        print(f"\r{host.count} cases", end="", file=sys.stderr, flush=True)

    try:
        with without_local_constants():
            one()
    finally:
        host.close()
        lines = [f"{host.count} configs (seed {args.seed}): "
                 + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))]
        lines += [f"{n:5d}  {f}  [{v}]" for (f, v), n in sorted(counts.items())]
        lines += ["runc did not run the process:"]
        lines += [f"{n:5d}  {r}" for r, n in reasons.most_common()]
        (args.out / "summary.txt").write_text("\n".join(lines) + "\n")
        print("\n" + "\n".join(lines))
        with open("/proc/self/mountinfo") as f:
            mounted = any(str(base) in line for line in f)
        if mounted:
            print(f"mounts left under {base}: not removing it", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

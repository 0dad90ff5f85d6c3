"""Generated configs under pyruntime and runc 1.1.5: the same outcome, the same view.

The bounded run (a fixed seed, FUZZ_EXAMPLES cases) is part of `make test`; `make fuzz`
runs a long one with a fresh seed.  `make test-served` runs 100 configs from the same
seed through `pyruntime serve` (all 500 again would double this test's time for a path
that shares everything but the fork); hypothesis plans its draws by the number asked for,
so those are not the first 100 of the 500, but the same 100 every run.  Environment:
  FUZZ_EXAMPLES  number of configs hypothesis generates (default 500; served 100)
  FUZZ_SEED      hypothesis seed (default 20261203, fixed, so CI runs the same configs)
  FUZZ_SHRINK    1: shrink a failing config before reporting it (the default only when
                 FUZZ_EXAMPLES is set, as by `make fuzz`); 0: report it as generated
A fixed seed generates the same configs in the same order on every run (no example
database, no deadline, no health checks: nothing that depends on timing or on earlier
runs; none of the constants hypothesis would take from the modules loaded, which differ
by what pytest collected; the strategies read only this host's limits, sysctls and
hostname).  The summary
line prints a digest of them to show it.  A config generated twice is run once.
A failure prints the config (host paths as @HOST@ etc.), each differing field with both
values, and both runtimes' stderr.  Accepted departures are in allowlist.py.  To see
every difference of a run at once rather than the first, use survey.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, event, given, seed, settings

from differential import allowlist
from differential.compare import differences
from differential.harness import FuzzHost
from differential.strategies import configs, without_local_constants
from support import Runtime
from support.runc import AGAINST_RUNC
from support.runtime import served_suite

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100" if served_suite() else "500"))
SEED = int(os.environ.get("FUZZ_SEED", "20261203"))
SHRINK = os.environ.get("FUZZ_SHRINK", "1" if "FUZZ_EXAMPLES" in os.environ else "0") != "0"

pytestmark = AGAINST_RUNC

STATS: Counter[str] = Counter()
RESULTS: dict[str, str] = {}  # config digest -> "" (passed) or the failure, for repeats
DIGEST = hashlib.sha256()  # of every generated config, in order


@pytest.fixture
def fuzz_host(runtime: Runtime, busybox_rootfs: Path, test_token: str,
              request: pytest.FixtureRequest) -> Iterator[FuzzHost]:
    # not under pytest's temp directory: a pytest session starting elsewhere on the host
    # makes its top (pytest-of-root) 0700 again, and a user namespace's root could then
    # not reach this run's bundles (pyruntime and runc would fail in turn, by timing)
    top = Path(tempfile.mkdtemp(prefix="pyrt-fuzz-"))
    host = FuzzHost(base=top / "fuzz", runtime=runtime, token=test_token)
    host.base.mkdir()
    try:
        with without_local_constants():
            yield host.setup(busybox_rootfs)
    finally:
        host.close()
        _remove_unless_mounted(top)
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        summary = (f"differential fuzz (seed {SEED}): {STATS.pop('generated', 0)} configs "
                   f"generated (digest {DIGEST.hexdigest()[:16]}), {host.count} distinct ones "
                   "compared; "
                   + ", ".join(f"{k} {v}" for k, v in sorted(STATS.items())))
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():  # else captured, shown on failure only
                reporter.write_line("\n" + summary)


def _remove_unless_mounted(top: Path) -> None:
    """Remove *top*, unless something is still mounted below it (the leftover check
    reports that; removing would cross into the mount)."""
    with open("/proc/self/mountinfo") as f:
        if any(f" {top}/" in line for line in f):
            return
    shutil.rmtree(top, ignore_errors=True)


@settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
          report_multiple_bugs=False,
          phases=[Phase.explicit, Phase.generate] + ([Phase.shrink] if SHRINK else []),
          suppress_health_check=list(HealthCheck))
@seed(SEED)
@given(config=configs())
def test_same_as_runc(fuzz_host: FuzzHost, config: dict) -> None:
    text = json.dumps(config, sort_keys=True).encode()
    digest = hashlib.sha256(text).hexdigest()
    DIGEST.update(digest.encode())
    STATS["generated"] += 1
    if digest not in RESULTS:  # else drawn before (another path to the same values)
        RESULTS[digest] = _compare(fuzz_host, config)
    if RESULTS[digest]:  # one place: hypothesis calls a replay raising elsewhere flaky
        raise AssertionError(RESULTS[digest])


def _compare(fuzz_host: FuzzHost, config: dict) -> str:
    """Run *config* under both runtimes: "" if they agree (up to the allow list), else
    what differs."""
    ours, theirs = fuzz_host.run_case(config)
    STATS["both ran" if ours.ran and theirs.ran else
          "neither ran" if not ours.ran and not theirs.ran else "one ran"] += 1
    unexplained = []
    for d in differences(ours, theirs):
        entries = allowlist.accepted(config, d, ours, theirs)
        if not entries:
            unexplained.append(d)
        for entry in entries:
            STATS[f"allowed: {entry.name}"] += 1
            event(f"allowed: {entry.name}")
    if not unexplained:
        return ""
    return ("pyruntime and runc differ on this config:\n"
            + json.dumps(config, indent=1)
            + "\n\n" + "\n".join(map(str, unexplained))
            + f"\n\n--- pyruntime stderr ---\n{ours.stderr}--- runc stderr ---\n{theirs.stderr}")

"""Generated configs under pyruntime and runc 1.1.5: the same outcome, the same view.

The bounded run (a fixed seed, FUZZ_EXAMPLES cases) is part of `make test`; `make fuzz`
runs a long one with a fresh seed.  `make test-served` runs the first 50 of the same
configs through `pyruntime serve` (the whole 200 again would double this test's time for
a path that shares everything but the fork).  Environment:
  FUZZ_EXAMPLES  number of configs (default 200; served 50)
  FUZZ_SEED      hypothesis seed (default 20261203, fixed, so CI runs the same configs)
  FUZZ_SHRINK    0: report the first failing config as generated, without shrinking it
A failure prints the config (host paths as @HOST@ etc.), each differing field with both
values, and both runtimes' stderr.  Accepted departures are in allowlist.py.  To see
every difference of a run at once rather than the first, use survey.py.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, event, given, seed, settings

from differential import allowlist
from differential.compare import differences
from differential.harness import FuzzHost
from differential.strategies import configs
from support import Runtime
from support.runc import RUNC
from support.runtime import served_suite

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50" if served_suite() else "200"))
SEED = int(os.environ.get("FUZZ_SEED", "20261203"))
SHRINK = os.environ.get("FUZZ_SHRINK", "1") != "0"

pytestmark = [
    pytest.mark.root,
    pytest.mark.pyruntime_only,  # runc is the other side of every comparison
    pytest.mark.skipif(RUNC is None, reason="runc (the oracle) is not installed"),
]

STATS: Counter[str] = Counter()


@pytest.fixture
def fuzz_host(runtime: Runtime, busybox_rootfs: Path, tmp_path: Path, test_token: str,
              request: pytest.FixtureRequest) -> Iterator[FuzzHost]:
    host = FuzzHost(base=tmp_path / "fuzz", runtime=runtime, token=test_token)
    host.base.mkdir()
    try:
        yield host.setup(busybox_rootfs)
    finally:
        host.close()
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        summary = (f"differential fuzz (seed {SEED}): {host.count} configs run under both; "
                   + ", ".join(f"{k} {v}" for k, v in sorted(STATS.items())))
        if reporter is not None:
            reporter.write_line("\n" + summary)


@settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
          phases=[Phase.explicit, Phase.generate] + ([Phase.shrink] if SHRINK else []),
          suppress_health_check=list(HealthCheck))
@seed(SEED)
@given(config=configs())
def test_same_as_runc(fuzz_host: FuzzHost, config: dict) -> None:
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
    if unexplained:
        raise AssertionError(
            "pyruntime and runc differ on this config:\n"
            + json.dumps(config, indent=1)
            + "\n\n" + "\n".join(map(str, unexplained))
            + f"\n\n--- pyruntime stderr ---\n{ours.stderr}--- runc stderr ---\n{theirs.stderr}")

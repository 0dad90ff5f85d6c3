"""The differential fuzzer runs under `make fuzz` (FUZZ_EXAMPLES set) or with FUZZ_IN_TEST=1.

Not yet in plain `make test`: its fixed-seed run still meets differences that have no
allow-list entry yet (see the last ones in the README's paragraph on tests/differential/).
"""

import os

collect_ignore_glob = ([] if os.environ.get("FUZZ_EXAMPLES") or os.environ.get("FUZZ_IN_TEST")
                       else ["test_*.py"])

"""A differential fuzzer: generated runtime-spec configs run under pyruntime and runc.

strategies.py  hypothesis strategies over the config's field space (placeholders for host
               paths: HOST, HOOKS, NS_<type>)
probe.py       the busybox sh script the container runs to report what it sees
harness.py     materialise one case for each runtime, run it, collect an Outcome
compare.py     normalise and compare two Outcomes field by field
allowlist.py   the one list of departures we accept, each with its reason and predicate
test_fuzz_runc.py  the bounded run (`make test`); `make fuzz` for a long one
"""

# pyruntime developer entry points.  `make setup` installs everything the project needs
# on a fresh Debian 12 machine (as root) and is quick when there is nothing to do.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := setup

VENV := .venv
PY := $(VENV)/bin/python
STAMPS := $(VENV)/.stamps
# Debian's interpreter, not whatever `python3` is on root's PATH (pyenv's lives under /root,
# which other users cannot read or execute): the venv must work for every user (README,
# Rootless).  Debian's build is also PGO/LTO-optimised and starts faster.
SYS_PYTHON ?= /usr/bin/python3
APT_PACKAGES := python3-venv python3-dev uidmap busybox-static libseccomp-dev libcap-dev pkg-config gcc libc6-dev runc crun hyperfine zstd \
                criu docker-registry skopeo apache2-utils strace
PYTEST_ARGS ?=

.PHONY: setup apt native native-if-stale check-native check-others test test-served lint demo integration \
        integration-served bench clean distclean fuzz

setup: apt $(STAMPS)/installed native-if-stale check-native $(VENV)/bin/pyruntime-python \
       $(VENV)/bin/pyruntime check-others

# apt-get only when a package is missing; `apt-get update` only then.
apt:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q '^install ok installed$$' \
	    || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: apt-get install$$missing"; \
	  apt-get update -q; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

# An existing venv built from another interpreter (e.g. pyenv's, before SYS_PYTHON was
# Debian's) is recreated; one built from SYS_PYTHON is kept, so setup stays idempotent.
VENV_WANT := $(shell readlink -f $(SYS_PYTHON) 2>/dev/null)
VENV_HAVE := $(shell sed -n 's/^executable = //p' $(VENV)/pyvenv.cfg 2>/dev/null \
                     | xargs -r readlink -f 2>/dev/null)
VENV_CFG := $(VENV)/pyvenv.cfg
ifneq ($(VENV_HAVE),$(VENV_WANT))
$(VENV_CFG): FORCE
endif
$(VENV_CFG):
	@if [ -e $(VENV) ]; then \
	  echo "setup: $(VENV) was built from '$(VENV_HAVE)', not $(VENV_WANT): recreating it"; \
	  rm -rf $(VENV); \
	fi
	$(SYS_PYTHON) -m venv $(VENV)

.PHONY: FORCE
FORCE:

# The editable install is redone only when the packaging files change.  It leaves the
# cffi extension out (PYRUNTIME_SKIP_NATIVE=1, see setup.py): the extension is built in
# place below, into pyruntime/, which the editable install imports from.  One copy of
# _native*.so, one way to build it.
$(STAMPS)/installed: pyproject.toml setup.py $(VENV_CFG)
	$(PY) -m pip install -q 'setuptools>=68' wheel 'cffi>=1.16'
	PYRUNTIME_SKIP_NATIVE=1 $(PY) -m pip install -q --no-build-isolation -e '.[test]'
	@mkdir -p $(STAMPS) && touch $@

# The Python CLI: a launcher that runs Python with -I -S (pyruntime/cli/launcher.py).
# pip's console script goes through site, whose editable-install finder costs ~25 ms per
# call.
$(VENV)/bin/pyruntime-python: $(STAMPS)/installed pyruntime/cli/launcher.py
	$(PY) -m pyruntime.cli.launcher $@

# The pyruntime command (native/client/pyruntime.c): hands the call to `pyruntime serve`
# when one listens, else execs pyruntime-python.  It forks the container's processes
# itself, so it links the native spawn code; static, so no dynamic loader runs per call;
# without native/seccomp.c (compiling profiles is the Python side's, with libseccomp).
# Rebuilt after every install, since pip puts its own console script at this path, and
# after any change to the package: it carries the package's build id, which a server must
# share to serve it (pyruntime/served/buildid.py).
CLIENT_SRC := native/client/pyruntime.c $(filter-out native/seccomp.c,$(wildcard native/*.c))
PACKAGE_FILES := $(shell find pyruntime -name __pycache__ -prune -o -name '*.py' -print) \
                 $(wildcard pyruntime/_native*.so)
$(VENV)/bin/pyruntime: $(STAMPS)/installed $(CLIENT_SRC) $(wildcard native/*.h) $(PACKAGE_FILES) \
                       | native-if-stale
	id=$$($(PY) -m pyruntime.served.buildid); \
	$(CC) -O2 -Wall -Wextra -Werror=implicit-function-declaration -D_GNU_SOURCE -Inative \
	  -DPYRT_BUILD_ID="\"$$id\"" -static -o $@.tmp $(CLIENT_SRC)
	mv $@.tmp $@

# Rebuild the extension when the file Python would import as pyruntime._native is missing
# or older than anything under native/.  (Asking importlib, not globbing, matters: a plain
# `pip install -e .` leaves a _native.abi3.so, while native/build.py writes the
# higher-priority _native.cpython-3XX-*.so.)
native-if-stale: $(STAMPS)/installed
	@so=$$($(PY) -c 'import importlib.util as u; s = u.find_spec("pyruntime._native"); print(s.origin if s else "")' 2>/dev/null || true); \
	if [ -z "$$so" ] || [ "$$so" -ot $(VENV_CFG) ] \
	   || [ -n "$$(find native -type f -newer "$$so" -print -quit)" ]; then \
	  echo "setup: building the native extension (native/build.py)"; \
	  $(PY) native/build.py; \
	fi

native: $(STAMPS)/installed
	$(PY) native/build.py

# Any user may run this checkout (README, Rootless) if every directory down to it is
# searchable by others; a clone under /root is not: warn, since nothing else would say so.
check-others:
	@d=$(CURDIR); while [ "$$d" != / ]; do \
	  if [ -z "$$(find "$$d" -maxdepth 0 -perm -o=x)" ]; then \
	    echo "setup: warning: $$d is not searchable by other users: only its owner can run this checkout's pyruntime (README, Rootless)" >&2; \
	    break; \
	  fi; \
	  d=$$(dirname "$$d"); \
	done

check-native:
	@$(PY) -c 'import pyruntime._native' \
	  || { echo "setup: 'import pyruntime._native' failed" >&2; exit 1; }

# pytest's exit code 5 (no tests collected) is a failure here.  The last line repeats the
# counts, skips included, so a skipped root test cannot go unnoticed.
test: setup
	@mkdir -p build; \
	set +e; $(PY) -m pytest $(PYTEST_ARGS) 2>&1 | tee build/pytest.log; rc=$${PIPESTATUS[0]}; set -e; \
	summary=$$( { grep -E '^(=+ )?[0-9]+ [a-z].* in [0-9.]+s' build/pytest.log || true; } | tail -n1); \
	count() { echo "$$summary" | grep -oE "[0-9]+ $$1" | grep -oE '^[0-9]+' || echo 0; }; \
	passed=$$(count passed); failed=$$(( $$(count failed) + $$(count error) )); skipped=$$(count skipped); \
	if [ "$$rc" -eq 5 ]; then echo "make test: pytest ran no test (exit 5): failing" >&2; rc=1; fi; \
	if [ "$$skipped" -gt 0 ]; then echo "make test: $$skipped SKIPPED (reasons in the short test summary above)"; fi; \
	echo "tests: $$passed passed, $$failed failed, $$skipped skipped"; \
	exit $$rc

# The whole suite again, every verb through the `pyruntime` client and one `pyruntime
# serve` (tests/conftest.py starts it): served calls must behave as cold ones.
test-served: setup
	@PYRUNTIME_TEST_SERVED=1 $(MAKE) --no-print-directory test PYTEST_ARGS="$(PYTEST_ARGS)"

# A long differential run against runc (tests/differential/): FUZZ_EXAMPLES generated
# configs (default 2000) from FUZZ_SEED (default: a fresh one, printed first).  `make test`
# runs the same test bounded, with a fixed seed.
fuzz: setup
	@seed=$${FUZZ_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; echo "fuzz: FUZZ_SEED=$$seed"; \
	FUZZ_SEED=$$seed FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-2000} \
	  $(PY) -m pytest tests/differential -q -p no:cacheprovider $(PYTEST_ARGS)

# vulture at 100% confidence only: unreachable code, unused imports, arguments and
# variables.  Lower confidences flag what only a framework calls (pytest hooks, click,
# http.server's do_GET) and verbs found through the CLI table.
lint: setup
	$(PY) -m ruff check .
	$(PY) -m vulture --min-confidence 100 pyruntime/ tests/ integration/

demo: setup
	bash integration/demo.sh

integration: setup
	@if [ -x integration/run.sh ]; then integration/run.sh; else echo "integration: not yet"; fi

# The client suites again, every call through `pyruntime serve`.
integration-served: setup
	@PYRUNTIME_INTEGRATION_SERVED=1 $(MAKE) --no-print-directory integration

bench: setup
	@if [ -x integration/bench/run.sh ]; then integration/bench/run.sh; else echo "bench: not yet"; fi

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	rm -f pyruntime/_native*.so
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# cgroup v2 lane: boots Debian's 6.1 kernel under QEMU TCG with a pure cgroup2 hierarchy
# and runs `pytest -m cgroupv2` there (integration/cgroupv2/README.md).
.PHONY: test-cgroupv2
test-cgroupv2: setup
	bash integration/cgroupv2/run.sh

# systemd lane: the same VM with systemd 252 as PID 1; runs `pytest -m systemd` there, the
# systemd cgroup driver's tests (integration/systemd/README.md).
.PHONY: test-systemd
test-systemd: setup
	bash integration/systemd/run.sh

# The same lane booted with systemd on cgroup v1 (hybrid): the driver's v1 half
# (tests/test_systemd_v1.py, the cgroup suite with --systemd-cgroup).
.PHONY: test-systemd-v1
test-systemd-v1: setup
	PYRT_SYSTEMD_UNIFIED=0 bash integration/systemd/run.sh -- .venv/bin/python -m pytest \
		-p no:cacheprovider -m systemd -ra tests/

#!/usr/bin/env bash
# The Docker suite alone (see integration/run.sh; extra arguments go to pytest).
exec "$(dirname "${BASH_SOURCE[0]}")/../run.sh" integration/docker "$@"

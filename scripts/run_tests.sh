#!/usr/bin/env bash
# Runs pytest and treats "no tests collected" (exit 5) as a failure, not a pass.
# tests/operator_kserve imports the kserve SDK, which cannot share a process with
# tritonclient.grpc (kserve/kserve#3099): it runs second, in its own process, from the
# operator overlay venv (.venv-operator, made by scripts/setup.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "error: no tests were collected" >&2; rc=1; fi
# Only when the selection could include it: no explicit paths given.
explicit=0
for arg in "$@"; do case $arg in tests/*|./tests/*) explicit=1 ;; esac; done
if [ $explicit -eq 0 ]; then
  .venv-operator/bin/python -m pytest "$@" tests/operator_kserve
  krc=$?
  if [ $krc -eq 5 ]; then krc=0; fi  # a marker selection (-m "not integration") may leave none
  if [ $rc -eq 0 ]; then rc=$krc; fi
fi
exit $rc

"""Tests that import the kserve SDK: their own pytest process, in ``.venv-operator``.

kserve and ``tritonclient.grpc`` register the same V2 protobufs and cannot share a process
(kserve/kserve#3099), which is also why the operator never loads Triton's gRPC client.
``scripts/run_tests.sh`` runs this directory on its own; the main run ignores it.
"""

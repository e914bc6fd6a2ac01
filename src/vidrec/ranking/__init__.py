"""Ranking serving artefacts: ONNX export, INT8 variant, Triton model repository, Triton
process and client.

Submodules are imported directly (``vidrec.ranking.export`` needs torch; the client and the
process helpers do not), so a serving process never pays for torch.
"""

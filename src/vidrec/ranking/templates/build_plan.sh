#!/usr/bin/env bash
@HEADER@
#
# Builds ranker_trt/<v>/model.plan from @RANKER@/<v>/@ONNX@ for every version present.
# Run it on the GPU node, inside the Triton image: a TensorRT plan is tied to the GPU's
# compute capability and to the TensorRT version it was built with. TRTEXEC overrides the
# trtexec binary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
trtexec="${TRTEXEC:-trtexec}"
if ! command -v "$trtexec" >/dev/null 2>&1; then
  echo "build_plan.sh: '$trtexec' not found: run this on a GPU node with TensorRT" >&2
  exit 2
fi
shopt -s nullglob
found=0
for onnx in "$here"/../@RANKER@/*/@ONNX@; do
  version="$(basename "$(dirname "$onnx")")"
  mkdir -p "$here/$version"
  @COMMAND@
  found=1
done
if [ "$found" -eq 0 ]; then
  echo "build_plan.sh: no $here/../@RANKER@/<version>/@ONNX@ to build from" >&2
  exit 2
fi

#!/usr/bin/env bash
@HEADER@
#
# Builds @TRT@/<v>/@PLAN@ from @RANKER@/<v>/@ONNX@ for every version present (or only
# TRT_VERSIONS="1 4"), on the GPU that will serve it: a TensorRT plan is tied to the GPU model
# and to the TensorRT version it was built with. Used as is by the chart (the trt-build
# initContainer and the per-version trt-plan Jobs) and by `vidrec gpu check`.
#
# Each plan gets @PLAN@.key beside it: ONNX sha256 + GPU name and compute capability +
# TensorRT version + optimisation profile (min/opt/max batch) + precision. A version whose
# key file matches is skipped, so a plan is rebuilt exactly when one of those changes.
# PLAN_CACHE (optional) keeps built plans by key across pods. The input width comes from the
# ONNX graph itself (its input's second dimension), never from a setting.
#
# Environment: MODEL_REPOSITORY (default: the repository holding this script), TRT_VERSIONS,
# PLAN_CACHE, TRT_MIN_BATCH, TRT_OPT_BATCH, TRT_MAX_BATCH, TRT_FP16 (1|0), TRT_INPUT_NAME,
# TRTEXEC (else /usr/src/tensorrt/bin/trtexec, the NGC images' path, else trtexec on PATH),
# TRT_PYTHON (python used to read the ONNX input width; default python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="${MODEL_REPOSITORY:-$here/..}"
min="${TRT_MIN_BATCH:-@MIN@}"
opt="${TRT_OPT_BATCH:-@OPT@}"
max="${TRT_MAX_BATCH:-@MAX@}"
fp16="${TRT_FP16:-@FP16@}"
input="${TRT_INPUT_NAME:-@INPUT@}"
python="${TRT_PYTHON:-python3}"
ngc_trtexec=/usr/src/tensorrt/bin/trtexec

die() {
  echo "build_plan.sh: $*" >&2
  exit 2
}
repo="$(cd "$repo" 2>/dev/null && pwd)" || die "MODEL_REPOSITORY=$repo: not a directory"

if [ -n "${TRTEXEC:-}" ]; then
  [ -x "$TRTEXEC" ] || command -v "$TRTEXEC" >/dev/null 2>&1 ||
    die "TRTEXEC=$TRTEXEC is not an executable"
  trtexec="$TRTEXEC"
elif [ -x "$ngc_trtexec" ]; then
  trtexec="$ngc_trtexec"
elif command -v trtexec >/dev/null 2>&1; then
  trtexec="$(command -v trtexec)"
else
  die "trtexec not found: not at $ngc_trtexec (NGC TensorRT/Triton images) and not on PATH;" \
    "run this in nvcr.io/nvidia/tensorrt:<release>-py3 on a GPU node, or set TRTEXEC=/path/to/trtexec"
fi
command -v nvidia-smi >/dev/null 2>&1 ||
  die "nvidia-smi not found: run this on a GPU node (NVIDIA driver + a container given a GPU)"
gpu="$(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader | head -n1)" ||
  die "nvidia-smi failed: no usable GPU"
[ -n "$gpu" ] || die "nvidia-smi lists no GPU: request nvidia.com/gpu for this container"
banner="$("$trtexec" --help 2>&1 || true)"
tensorrt="$(grep -o 'TensorRT v[0-9]*\] \[b[0-9]*' <<<"$banner" | head -n1 | tr -d '[]')" ||
  tensorrt="$(grep -o 'TensorRT v[0-9]*' <<<"$banner" | head -n1)" ||
  die "cannot read the TensorRT version from '$trtexec --help'"
case "$fp16" in
  1) precision=fp16 ;;
  0) precision=fp32 ;;
  *) die "TRT_FP16 must be 1 or 0, got '$fp16'" ;;
esac
[ "$min" -ge 1 ] && [ "$min" -le "$opt" ] && [ "$opt" -le "$max" ] ||
  die "need 1 <= TRT_MIN_BATCH ($min) <= TRT_OPT_BATCH ($opt) <= TRT_MAX_BATCH ($max)"

# The width of input "$input" [B, D]: onnx when installed, else a dependency-free read of the
# protobuf wire format (ModelProto.graph.input[].type.tensor_type.shape.dim[1].dim_value).
onnx_width() {
  "$python" - "$1" "$input" <<'PY'
import sys

path, name = sys.argv[1], sys.argv[2]
try:
    import onnx
except ImportError:
    onnx = None


def fields(buf):
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, i = varint(buf, i)
        elif kind == 2:
            size, i = varint(buf, i)
            value, i = buf[i : i + size], i + size
        elif kind in (1, 5):
            value, i = None, i + (8 if kind == 1 else 4)
        else:
            raise ValueError(f"unsupported wire type {kind}")
        yield number, value


def varint(buf, i):
    shift = result = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, i


def one(buf, number):
    return next((v for n, v in fields(buf) if n == number), b"")


def dims_wire(data):
    graph = one(data, 7)
    for n, info in fields(graph):
        if n == 11 and one(info, 1).decode() == name:
            shape = one(one(one(info, 2), 1), 2)
            return [dict(fields(d)).get(1) for n, d in fields(shape) if n == 1]
    return None


if onnx is not None:
    model = onnx.load(path, load_external_data=False)
    dims = next(
        ([d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
         for i in model.graph.input if i.name == name),
        None,
    )
else:
    with open(path, "rb") as f:
        dims = dims_wire(f.read())
if dims is None:
    sys.exit(f"{path}: no input named {name!r}")
if len(dims) != 2 or not dims[1]:
    sys.exit(f"{path}: input {name!r} has dims {dims}, expected [batch, width]")
print(dims[1])
PY
}

if [ -n "${TRT_VERSIONS:-}" ]; then
  read -r -a versions <<<"${TRT_VERSIONS//,/ }"
else
  versions=()
  for onnx in "$repo"/@RANKER@/*/@ONNX@; do
    [ -f "$onnx" ] && versions+=("$(basename "$(dirname "$onnx")")")
  done
fi
[ "${#versions[@]}" -gt 0 ] || die "no $repo/@RANKER@/<version>/@ONNX@ to build from"

for version in "${versions[@]}"; do
  onnx="$repo/@RANKER@/$version/@ONNX@"
  [ -f "$onnx" ] || die "$onnx: missing (version $version)"
  width="$(onnx_width "$onnx")" || die "$onnx: cannot read the width of input '$input'"
  key="onnx_sha256=$(sha256sum "$onnx" | cut -d' ' -f1)
gpu=$gpu
tensorrt=$tensorrt
profile=$input min=$min opt=$opt max=$max
precision=$precision"
  out="$repo/@TRT@/$version"
  plan="$out/@PLAN@"
  if [ -s "$plan" ] && [ "$(cat "$plan.key" 2>/dev/null)" = "$key" ]; then
    echo "build_plan.sh: version $version: plan up to date ($precision, $gpu, $tensorrt)"
    continue
  fi
  mkdir -p "$out"
  rm -f "$plan.key"
  id="$(sha256sum <<<"$key" | cut -c1-32)"
  if [ -n "${PLAN_CACHE:-}" ] && [ -s "$PLAN_CACHE/$id.plan" ] &&
    [ "$(cat "$PLAN_CACHE/$id.key" 2>/dev/null)" = "$key" ]; then
    echo "build_plan.sh: version $version: plan from the cache ($id)"
    cp "$PLAN_CACHE/$id.plan" "$plan.tmp"
  else
    echo "build_plan.sh: version $version: building (width $width, $precision, $gpu, $tensorrt)"
    args=(--onnx="$onnx" --saveEngine="$plan.tmp"
      --minShapes="$input:${min}x$width" --optShapes="$input:${opt}x$width"
      --maxShapes="$input:${max}x$width")
    if [ "$precision" = fp16 ]; then args+=(--fp16); fi
    "$trtexec" "${args[@]}"
    [ -s "$plan.tmp" ] || die "$trtexec wrote no plan for version $version"
    if [ -n "${PLAN_CACHE:-}" ]; then
      mkdir -p "$PLAN_CACHE"
      cp "$plan.tmp" "$PLAN_CACHE/$id.plan.tmp" && mv "$PLAN_CACHE/$id.plan.tmp" "$PLAN_CACHE/$id.plan"
      printf '%s\n' "$key" >"$PLAN_CACHE/$id.key"
    fi
  fi
  mv "$plan.tmp" "$plan"
  printf '%s\n' "$key" >"$plan.key"
done

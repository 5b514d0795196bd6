#!/usr/bin/env bash
# Create .venv with the CPU build of torch and every dependency of bench; idempotent.
# Never downloads a CUDA build of torch: it installs torch 2.13.0+cpu first, from a local
# wheel folder ($PIP_FIND_LINKS / $UV_FIND_LINKS) or from $BENCH_TORCH_INDEX (e.g.
# https://download.pytorch.org/whl/cpu), and fails fast if neither is available.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${BENCH_VENV:-.venv}
PY=${BENCH_PYTHON:-python3.11}
TORCH_VERSION=2.13.0

die() { echo "bootstrap: error: $*" >&2; exit 1; }

command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 is required (found $("$PY" --version 2>&1))"

if ! command -v uv >/dev/null 2>&1; then
    echo "bootstrap: installing uv with pip" >&2
    "$PY" -m pip install --quiet --user uv || "$PY" -m pip install --quiet uv
    export PATH="$HOME/.local/bin:$PATH"
fi
UV="uv"; command -v uv >/dev/null 2>&1 || UV="$PY -m uv"

[ -x "$VENV/bin/python" ] || $UV venv --quiet --python "$PY" "$VENV"
export VIRTUAL_ENV="$PWD/$VENV"

# Where the CPU torch wheel comes from (only needed until it is installed).
export UV_FIND_LINKS="${UV_FIND_LINKS:-${PIP_FIND_LINKS:-}}"
torch_src=()
if [ -n "$UV_FIND_LINKS" ] && ls "$UV_FIND_LINKS"/torch-${TORCH_VERSION}+cpu-*.whl >/dev/null 2>&1; then
    torch_src=(--find-links "$UV_FIND_LINKS")
elif [ -n "${BENCH_TORCH_INDEX:-}" ]; then
    torch_src=(--extra-index-url "$BENCH_TORCH_INDEX" --index-strategy unsafe-best-match)
fi
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__ != '${TORCH_VERSION}+cpu')" 2>/dev/null; then
    [ ${#torch_src[@]} -gt 0 ] || die "no CPU wheel of torch ${TORCH_VERSION} found. Put torch-${TORCH_VERSION}+cpu-*.whl in a folder \
named by PIP_FIND_LINKS, or set BENCH_TORCH_INDEX=https://download.pytorch.org/whl/cpu. Refusing to let the resolver pull the CUDA build."
    $UV pip install --quiet "${torch_src[@]}" "torch==${TORCH_VERSION}+cpu"
fi
# torch is now installed and pinned: the rest of the resolve must not touch it.
echo "torch==${TORCH_VERSION}+cpu" > "$VENV/torch-constraint.txt"
plan=$($UV pip install --dry-run "${torch_src[@]}" -c "$VENV/torch-constraint.txt" -e ".[dev,ray]" 2>&1) || { echo "$plan" >&2; die "dependency resolution failed"; }
if echo "$plan" | grep -Eiq '^ *\+ *(nvidia-|triton|torch==[^ ]*\+cu)'; then
    echo "$plan" >&2
    die "the install plan would download CUDA packages; refusing."
fi
$UV pip install --quiet "${torch_src[@]}" -c "$VENV/torch-constraint.txt" -e ".[dev,ray]"

"$VENV/bin/python" - <<PYEOF
import torch, sys
v = torch.__version__
if not v.endswith("+cpu"):
    sys.exit(f"bootstrap: error: torch {v} is not the CPU build")
print(f"bootstrap: ready ({sys.executable}, torch {v})", file=sys.stderr)
PYEOF

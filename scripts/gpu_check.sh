#!/usr/bin/env bash
# The GPU check (issue 18): the sst2 ladder on a CUDA machine that has no package index, then the checks its own
# run cannot make (scripts/gpu_probe.py: char_cnn timed first vs after another rung, batch 1 through CUDA graphs
# vs the eager module, throughput end to end and tokenised ahead). Results come back without fitted artifacts.
#
# Here, from the project root, after `make install`:
#   scripts/gpu_check.sh pack        # ../shared/gpu/pack.sh's dependencies, MiniLM weights and sst2 into .gpu/
#                                    # (ignored), plus what bench needs beyond them (skops, prettytable, wcwidth)
# The whole checkout travels and must stay under 64 MiB; `pack` prints its size. results/ (about 40 MB tracked)
# does not fit beside the pack: move it aside for the call (`mv results /tmp/bench-results`, back after).
# There (the device tool's run, carry [".gpu"], a timeout that leaves room for a rerun):
#   bash scripts/gpu_check.sh run    # writes $OUT/gpu-check.md|json, $OUT/leaderboard.md, $OUT/gpu-results.tgz
set -euo pipefail
DATASET=${DATASET:-sst2} DEVICE=${DEVICE:-cuda} PROFILE=${PROFILE:-default}  # DEVICE=cpu PROFILE=quick: a smoke test

pack() {
  ../shared/gpu/pack.sh .gpu "$DATASET"
  local sp
  sp=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  for p in skops prettytable wcwidth; do
    cp -a "$sp/$p" "$sp/$p"-*.dist-info .gpu/site/
  done
  find .gpu/site -name __pycache__ -prune -exec rm -rf {} +
  local tracked pack
  tracked=$(git ls-files -z | xargs -0 cat 2>/dev/null | wc -c)
  pack=$(du -sb .gpu | cut -f1)
  echo "tracked files $((tracked / 1048576)) MiB + .gpu $((pack / 1048576)) MiB (limit 64 MiB)"
}

run() {
  local out=${OUT:-/tmp/gpu-out} res=/tmp/gpu-results
  rm -rf "$res" && mkdir -p "$out"
  # shellcheck disable=SC1091
  source .gpu/unpack.sh
  [ "$DEVICE" = cpu ] || python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU')"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt" || true
  local t0=$SECONDS
  python3 -m bench run --all --datasets "$DATASET" --device "$DEVICE" --profile "$PROFILE" --seeds 0 --output "$res" \
    --no-html 2>&1 \
    | tee "$out/run.log" | grep -v "it/s\]" | tail -60 || true
  echo "ladder: $((SECONDS - t0)) s" | tee -a "$out/gpu.txt"
  python3 scripts/gpu_probe.py --results "$res" --dataset "$DATASET" --device "$DEVICE" --profile "$PROFILE" \
    --out "$out" 2>&1 | grep -v "it/s\]" || true
  cp "$res/$DATASET/leaderboard.md" "$out/" || true
  tar czf "$out/gpu-results.tgz" -C "$res" --exclude=artifact .
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: scripts/gpu_check.sh pack|run" >&2; exit 2 ;;
esac

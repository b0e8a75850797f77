#!/usr/bin/env bash
# Durable storage, side by side on this machine in one run: the offline
# QoS 1 queue (msg/s until the last PUBACK, disk bytes per message, drain)
# against Tern `engine = "memory"`, Tern redb `durability = "batched"` and
# `"strict"`, and Mosquitto with `persistence true`, each on a fresh data
# directory, set-ups rotated over interleaved rounds; then startup time on a
# store of 10 sessions x 10,000 queued + 10,000 retained messages (Tern redb
# vs Mosquitto). Brokers pinned to cpu 0, the generator to cpu 1. Prints
# Markdown tables (also saved next to the JSON under benches/results/<date>/).
#
#   cargo build --release -p tern -p tern-bench
#   benches/scripts/store_compare.sh [ROUNDS] [more `tern-bench store-compare` options]
#
# e.g. `benches/scripts/store_compare.sh 3 --proto 5`, or a smoke run:
# `benches/scripts/store_compare.sh 1 --messages 20000 --startup-queued 1000 --startup-runs 1`.
# Data directories go under $TMPDIR (or /tmp), which must be a real disk
# (the tool refuses a tmpfs); `--tmp DIR` puts them elsewhere.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=3
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
    rounds=$1
    shift
fi
bin=$(realpath -m "${CARGO_TARGET_DIR:-target}/release")
for b in tern tern-bench; do
    [[ -x $bin/$b ]] || { echo "$bin/$b missing: cargo build --release -p tern -p tern-bench" >&2; exit 1; }
done
out=benches/results/$(date -u +%F)
mkdir -p "$out"
# A unique name while running: two runs back to back can start in the
# second the previous one names its files.
md=$(mktemp "$out/store-compare-running-XXXXXX.md")
{
    echo "# tern-bench store-compare, $(date -u '+%F %H:%M') UTC"
    echo
    echo "- command: \`benches/scripts/store_compare.sh $rounds $*\`"
    echo "- checkout at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- broker || echo ' (broker/ modified)') (tern built from it), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- $(/usr/sbin/mosquitto -h 2>/dev/null | head -1 || true)"
    echo
} | tee "$md"
"$bin/tern-bench" store-compare --tern-bin "$bin/tern" --rounds "$rounds" --out "$out" "$@" | tee -a "$md"
# Name the Markdown after the JSON the tool wrote, so the two pair up.
json=$(sed -n 's/^wrote \(.*\.json\)$/\1/p' "$md" | tail -1)
if [[ -n $json ]]; then
    mv "$md" "${json%.json}.md"
    md=${json%.json}.md
fi
echo "wrote $md" >&2

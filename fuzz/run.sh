#!/usr/bin/env bash
# Seeds the corpus, then fuzzes one target on one core.
#   fuzz/run.sh <notification|rules|config> [seconds, default 300] [more libFuzzer flags]
# Works on a stable toolchain: without a sanitizer, cargo fuzz needs no nightly flags.
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
target="${1:?usage: fuzz/run.sh <notification|rules|config> [seconds] [libFuzzer flags]}"
seconds="${2:-300}"
shift
[ $# -gt 0 ] && shift

"$fuzz/seed.sh" >/dev/null
cd "$fuzz"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$fuzz/target}"
exec cargo fuzz run --sanitizer none "$target" -- \
    -jobs=1 -workers=1 -timeout=5 -rss_limit_mb=2048 \
    -max_total_time="$seconds" -dict="dict/$target.dict" "$@"

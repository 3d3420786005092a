#!/usr/bin/env bash
# Peak memory (resident set, VmHWM) of the daemon with 1,000 and 100,000 generated rules.
#
# For each size: starts `callscreen run` as shipped except for its files (dry-run, the
# generated rules, audit to a file, listening on 127.0.0.1), and prints its peak RSS
#   - once it is ready (the rules compiled and indexed),
#   - after a burst of invites, each a new call (wrk, or curl when wrk is missing),
#   - after a reload that changes one rule file, when the old set serves while the new one
#     compiles (so both are in memory at once),
# and the RSS it settles at. Ends with the 100,000-rule start-up figure against the target.
#
#   bench/memory.sh                   # SIZES="1000 100000"
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-1000 100000}
PORT=${PORT:-18280}
TARGET_MIB=64
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

cargo build --release -q --bin callscreen --example gen_rules
bin=$CARGO_TARGET_DIR/release

work=$(mktemp -d)
daemon=""
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Prints a /proc/PID/status field (kB) in MiB with one decimal.
mib() {
    awk -v key="$2:" '$1 == key {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}

# Waits until /readyz reports a rules version other than $1; prints the new one.
wait_version_change() {
    local version=""
    for _ in $(seq 1 600); do
        version=$(curl -s "http://127.0.0.1:$PORT/readyz" |
            sed -n 's/.*"rules_version":"\([0-9a-f]*\)".*/\1/p')
        if [ -n "$version" ] && [ "$version" != "$1" ]; then
            echo "$version"
            return
        fi
        sleep 0.1
    done
    echo "the daemon did not report a new rules version" >&2
    exit 1
}

invite=examples/notifications/p2p-aad-user-audio.json
call_id=$(sed -n 's/.*"id": "\([0-9a-f-]*\)".*/\1/p' "$invite" | tail -1)
sed "s/$call_id/CALL_ID/g" "$invite" >"$work/invite.json"
cat >"$work/invite.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local parts, sent = {}, 0
local file = assert(io.open("$work/invite.json"))
for part in (file:read("*a") .. "CALL_ID"):gmatch("(.-)CALL_ID") do
    parts[#parts + 1] = part
end
function request()
    sent = sent + 1
    local id = string.format("00000000-0000-4000-8000-%012x", sent)
    return wrk.format(nil, nil, nil, table.concat(parts, id))
end
LUA
start_figure=""
for size in $SIZES; do
    dir="$work/$size"
    mkdir -p "$dir"
    "$bin/examples/gen_rules" "$size" "$dir/rules" >/dev/null
    cat >"$dir/callscreen.toml" <<TOML
listen = "127.0.0.1:$PORT"
rules = "rules"
mode = "dry-run"
[audit]
path = "audit.jsonl"
TOML
    (cd "$dir" && exec "$bin/callscreen" run --config callscreen.toml 2>callscreen.log) &
    daemon=$!
    version=$(wait_version_change "")
    ready=$(mib "$daemon" VmHWM)

    # Every invite a new call id: the daemon remembers up to 100,000 recent calls.
    if command -v wrk >/dev/null 2>&1; then
        wrk -t 1 -c 16 -d 4s -s "$work/invite.lua" "http://127.0.0.1:$PORT/api/calls" \
            >"$dir/wrk.log" || echo "wrk failed, see $dir/wrk.log" >&2
    else
        for n in $(seq 1 500); do
            sed "s/$call_id/$call_id-$n/g" "$invite" |
                curl -s -o /dev/null -H 'Content-Type: application/json' --data-binary @- \
                    "http://127.0.0.1:$PORT/api/calls"
        done
    fi
    traffic=$(mib "$daemon" VmHWM)

    first=$(find "$dir/rules" -name '*.toml' | sort | head -1)
    echo "# changed for the memory bench" >>"$first"
    wait_version_change "$version" >/dev/null
    reload=$(mib "$daemon" VmHWM)
    sleep 1
    settled=$(mib "$daemon" VmRSS)
    kill "$daemon"
    wait "$daemon" 2>/dev/null || true
    daemon=""

    printf '%7s rules: peak RSS %6s MiB ready, %6s MiB after traffic, %6s MiB after a' \
        "$size" "$ready" "$traffic" "$reload"
    printf ' reload; settles at %s MiB\n' "$settled"
    [ "$size" = 100000 ] && start_figure=$ready
done
if [ -n "$start_figure" ]; then
    awk -v peak="$start_figure" -v target="$TARGET_MIB" 'BEGIN {
        printf "100,000 rules, peak RSS once serving: %s MiB (target under %d MiB: %s)\n",
            peak, target, (peak < target ? "met" : "missed") }'
fi

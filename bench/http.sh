#!/usr/bin/env bash
# HTTP throughput of callscreen against a bare hyper server, both loaded by wrk on
# 127.0.0.1 with the same invite bodies (a real notification, a new call id per request).
#
# callscreen runs as shipped except for its files: dry-run, 1,000 generated rules, the
# audit log in a file, logs (default level, info) to a file. The bare server
# (examples/bare_server.rs) reads each body and answers 202. Prints requests/s and p99
# latency of each, whether callscreen screened every request, and the ratio.
#
#   bench/http.sh                      # DURATION=10 CONNECTIONS=32 ROUNDS=2
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-2}
CALLSCREEN_PORT=${CALLSCREEN_PORT:-18180}
BARE_PORT=${BARE_PORT:-18181}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk from Debian" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi

cargo build --release -q --bin callscreen --example bare_server --example gen_rules
bin=$CARGO_TARGET_DIR/release

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$bin/examples/gen_rules" 1000 "$work/rules" >/dev/null
cat >"$work/callscreen.toml" <<TOML
listen = "127.0.0.1:$CALLSCREEN_PORT"
rules = "rules"
mode = "dry-run"
[audit]
path = "audit.jsonl"
TOML

# The invite, with its call id as a placeholder the script fills in per request.
template=examples/notifications/p2p-aad-user-audio.json
call_id=$(sed -n 's/.*"id": "\([0-9a-f-]*\)".*/\1/p' "$template" | tail -1)
sed "s/$call_id/CALL_ID/g" "$template" >"$work/invite.json"
cat >"$work/invite.lua" <<LUA
-- Each request: the invite with a call id no other request has.
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("thread_no", threads)
end
function init(args)
    run_no = tonumber(args[1])
    local file = assert(io.open("$work/invite.json"))
    local body = file:read("*a")
    file:close()
    parts = {}
    for part in (body .. "CALL_ID"):gmatch("(.-)CALL_ID") do
        parts[#parts + 1] = part
    end
    sent = 0
    wrk.method = "POST"
    wrk.path = "/api/calls"
    wrk.headers["Content-Type"] = "application/json"
end
function request()
    sent = sent + 1
    local id = string.format("%08x-%04x-4000-8000-%012x", run_no, thread_no, sent)
    return wrk.format(nil, nil, nil, table.concat(parts, id))
end
LUA

(cd "$work" && exec "$bin/callscreen" run --config callscreen.toml 2>callscreen.log) &
pids+=($!)
"$bin/examples/bare_server" "127.0.0.1:$BARE_PORT" 2>"$work/bare.log" &
pids+=($!)
for url in "http://127.0.0.1:$CALLSCREEN_PORT/healthz" "http://127.0.0.1:$BARE_PORT/"; do
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$url" && break
        sleep 0.1
    done
done

# Runs wrk against $1 for $2 seconds as run number $3 (part of every call id it sends);
# prints "requests rps p99_ms non2xx".
load() {
    local out
    out=$(wrk -t 1 -c "$CONNECTIONS" -d "${2}s" --latency -s "$work/invite.lua" "$1" -- "$3")
    echo "$out" >>"$work/wrk.log"
    local requests rps p99 unit non2xx
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    read -r p99 unit < <(echo "$out" | awk '$1 == "99%" {v = $2; u = v; sub(/[0-9.]+/, "", u);
        sub(/[a-z]+$/, "", v); print v, u}')
    case $unit in
        us) p99=$(awk -v v="$p99" 'BEGIN {print v / 1000}') ;;
        s) p99=$(awk -v v="$p99" 'BEGIN {print v * 1000}') ;;
    esac
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    echo "$requests $rps $p99 ${non2xx:-0}"
}

callscreen_url="http://127.0.0.1:$CALLSCREEN_PORT/api/calls"
bare_url="http://127.0.0.1:$BARE_PORT/api/calls"
sent=0
# Warm up both, then alternate so that both see the same background load.
read -r warm _ _ _ < <(load "$callscreen_url" 2 1)
sent=$((sent + warm))
load "$bare_url" 2 2 >/dev/null
runs=2

declare -A requests=() seconds=() p99s=() failures=()
for name in bare callscreen; do
    requests[$name]=0
    p99s[$name]=""
    failures[$name]=0
done
for round in $(seq 1 "$ROUNDS"); do
    for name in bare callscreen; do
        url=$bare_url
        [ "$name" = callscreen ] && url=$callscreen_url
        runs=$((runs + 1))
        read -r count rps p99 non2xx < <(load "$url" "$DURATION" "$runs")
        requests[$name]=$((requests[$name] + count))
        failures[$name]=$((failures[$name] + non2xx))
        p99s[$name]="${p99s[$name]} $p99"
        [ "$name" = callscreen ] && sent=$((sent + count))
        echo "round $round $name: $rps requests/s, p99 $p99 ms"
    done
done

# Every accepted invite must be screened and audited, not merely answered.
screened=0
for _ in $(seq 1 300); do
    screened=$(wc -l <"$work/audit.jsonl")
    [ "$screened" -ge "$sent" ] && break
    sleep 0.1
done
duplicates=$(grep -c '"outcome":"duplicate"' "$work/audit.jsonl" || true)

total=$((ROUNDS * DURATION))
report() {
    local name=$1
    local rps worst
    rps=$(awk -v n="${requests[$name]}" -v t="$total" 'BEGIN {printf "%.0f", n / t}')
    worst=$(echo "${p99s[$name]}" | tr ' ' '\n' | sort -g | tail -1)
    printf '%-11s %8s requests/s, p99 %s ms (worst of %s runs), non-2xx %s\n' \
        "$name:" "$rps" "$worst" "$ROUNDS" "${failures[$name]}"
}
echo "wrk: 1 thread, $CONNECTIONS connections, $ROUNDS x ${DURATION}s per server; $(nproc) cores"
report bare
report callscreen
echo "callscreen audit records: $screened of $sent invites sent ($duplicates duplicates)"
awk -v c="${requests[callscreen]}" -v b="${requests[bare]}" \
    'BEGIN {printf "throughput ratio (callscreen/bare): %.2f\n", c / b}'

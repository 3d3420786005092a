#!/usr/bin/env bash
# Copies the repository's example inputs into fuzz/corpus/<target>/ as seeds.
# Safe to run again: existing corpus entries are kept, seeds are refreshed.
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$fuzz")"

seed() {
    local target="$1"
    shift
    mkdir -p "$fuzz/corpus/$target"
    local file name
    for file in "$@"; do
        # Prefix with the folder so equal file names from different examples do not clash.
        name="$(basename "$(dirname "$file")")-$(basename "$file")"
        cp "$file" "$fuzz/corpus/$target/seed-$name"
    done
    echo "$target: $# seeds"
}

cd "$repo"
seed notification examples/notifications/*.json
seed rules rules/*.toml examples/rules/*/*.toml
seed config systemd/callscreen.toml
# The production example leaves some tables commented out; two small configs cover them.
printf '[tls]\ncert = "cert.pem"\nkey = "key.pem"\n[inbound]\nauth = "off"\n' \
    >"$fuzz/corpus/config/seed-tls.toml"
printf 'mode = "enforce"\n[graph]\ntenant_id = "t"\nclient_id = "c"\n%s\n' \
    'token_url = "http://127.0.0.1:9/{tenant_id}"' >"$fuzz/corpus/config/seed-enforce.toml"

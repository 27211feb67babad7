#!/bin/sh
# Fails when a source file includes a header of a layer it may not use
# (SPEC section 7, docs/architecture.md).  Allowed edges, by directory:
#   core   -> (nothing of parley)
#   net    -> core
#   proto  -> core
#   store  -> core
#   bus    -> core
#   ops    -> core
#   chat   -> core proto chat, and only the interfaces store/store.h, bus/bus.h
#   server -> everything
# Also: chat/ never includes RocksDB, PostgreSQL, Redis or libuv headers.
set -e
cd "$(dirname "$0")/.."
fail=0
check() {  # layer allowed-prefixes...
    layer=$1; shift
    for f in src/$layer/*.c src/$layer/*.h; do
        [ -e "$f" ] || continue
        grep -o '#include *"[^"]*"' "$f" | sed 's/#include *"//; s/"$//' | while read -r inc; do
            ok=0
            for a in "$@"; do
                case "$inc" in $a) ok=1 ;; esac
            done
            if [ $ok = 0 ]; then
                echo "layer violation: $f includes \"$inc\""
                echo x >> "$tmp"
            fi
        done
    done
}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
check core 'core/*'
check net 'core/*' 'net/*'
check proto 'core/*' 'proto/*'
check store 'core/*' 'store/*'
check bus 'core/*' 'bus/*'
check ops 'core/*' 'ops/*'
check chat 'core/*' 'proto/*' 'chat/*' 'store/store.h' 'bus/bus.h'
for f in src/chat/*.c src/chat/*.h; do
    [ -e "$f" ] || continue
    if grep -nE '#include *<(rocksdb/|libpq|postgresql/|hiredis/|uv\.h|wslay/|http_parser)' "$f"; then
        echo "layer violation: $f includes a storage, bus or network library header"
        echo x >> "$tmp"
    fi
done
if [ -s "$tmp" ]; then exit 1; fi
echo "layers: ok"

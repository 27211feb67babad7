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
#   client/lib   -> core proto, the public parley.h, its own headers
#   client/cli, client/bench -> core proto parley.h (the library's public
#                   header only), their own headers
# Also: chat/ never includes RocksDB, PostgreSQL, Redis or libuv headers,
# and client/ never includes chat, store, bus, server or net headers.
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
# client/DIR: quoted includes must be core/, proto/, parley.h or a header of
# the same directory.
check_client() {  # dir allowed-prefixes...
    dir=$1; shift
    for f in client/$dir/*.c client/$dir/*.h; do
        [ -e "$f" ] || continue
        grep -o '#include *"[^"]*"' "$f" | sed 's/#include *"//; s/"$//' | while read -r inc; do
            ok=0
            for a in "$@"; do
                case "$inc" in $a) ok=1 ;; esac
            done
            case "$inc" in */*) ;; *) [ -e "client/$dir/$inc" ] && ok=1 ;; esac
            if [ $ok = 0 ]; then
                echo "layer violation: $f includes \"$inc\""
                echo x >> "$tmp"
            fi
        done
    done
}
check_client lib 'core/*' 'proto/*' 'parley.h'
check_client cli 'core/*' 'proto/*' 'parley.h'
check_client bench 'core/*' 'proto/*' 'parley.h'
if [ -s "$tmp" ]; then exit 1; fi
echo "layers: ok"

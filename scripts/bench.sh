#!/bin/sh
# The standard parley-bench suite (`make bench`; docs/benchmarks.md):
#   1. builds build/ (BENCH_NO_BUILD=1 skips it; PARLEY_BUILD picks another
#      build directory)
#   2. starts fresh build/parleyd instances on free ports with temporary
#      data directories and the limits a load test must lift (no per-user
#      message rate, no per-IP connection, connection-rate or login-rate
#      limits): one for idle (so its memory figures are not mixed with what
#      earlier runs left allocated), one for login, group, channel and
#      catchup, one for the dm runs (whose highest rates overload it), one
#      for the sustained dm run
#   3. runs the scenarios at sizes that fit a 2-core machine, the whole
#      suite in under 5 minutes, and writes build/bench/<run>.json, the
#      server logs and build/bench/summary.txt (the tables as printed)
# Sizes can be changed with BENCH_IDLE (connections, default 20000: more
# than one parleyd can hold with 20,000 open files), BENCH_DM_RATES
# (offered msg/s of the dm runs), BENCH_DURATION (seconds per run) and
# BENCH_SUSTAINED (seconds of the last run, 1:1 at 100,000 msg/s on a
# fresh server for long enough that the store's compactions of what the
# run itself wrote weigh in, default 60; 0 skips it) and BENCH_SETTLE
# (seconds of quiet before that run, default 15).
set -eu
cd "$(dirname "$0")/.."
BUILD=${PARLEY_BUILD:-build}
OUT=$BUILD/bench
DUR=${BENCH_DURATION:-10}
IDLE=${BENCH_IDLE:-20000}
DM_RATES=${BENCH_DM_RATES:-10000 20000 50000 100000}
SUSTAINED=${BENCH_SUSTAINED:-60}

[ "${BENCH_NO_BUILD:-0}" = 1 ] || make --no-print-directory build
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
failed=""
PID=""
DATA=""

stop_server() {
    if [ -n "$PID" ]; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    [ -n "$DATA" ] && rm -rf "$DATA"
    PID=""
    DATA=""
}
trap stop_server EXIT INT TERM

start_server() {  # name
    DATA=$(mktemp -d /tmp/parley-bench-XXXXXX)
    log=$OUT/parleyd-$1.log
    "$BUILD/parleyd" --data "$DATA" --http 127.0.0.1:0 --tcp 127.0.0.1:0 --udp "" \
        --msg-rate 0 --max-conns-per-ip 0 --conn-rate-per-ip 0 --login-rate-per-ip 0 \
        2> "$log" &
    PID=$!
    i=0
    while ! grep -q '"parleyd started"' "$log" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 150 ] || ! kill -0 "$PID" 2>/dev/null; then
            echo "bench: parleyd did not start:" >&2
            cat "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
    line=$(grep '"parleyd started"' "$log")
    HTTP_PORT=$(echo "$line" | sed 's/.*"http_port":"\([0-9]*\)".*/\1/')
    URL=ws://127.0.0.1:$HTTP_PORT
}

run() {  # json-name scenario args...
    name=$1
    shift
    echo "bench: parley-bench $* ($(uptime | sed 's/.*load/load/'))" >&2
    if ! "$BUILD/parley-bench" "$@" --url "$URL" --data "$DATA" --server-pid "$PID" \
        --json "$OUT/$name.json" --quiet | tee -a "$SUMMARY"; then
        failed="$failed $name"
    fi
}

echo "parley-bench suite, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB" \
    | tee -a "$SUMMARY"

start_server idle
run idle idle --clients "$IDLE" --src-ips 2 --duration "$DUR"
stop_server

start_server main
run login login --clients 16 --pw-users 16 --duration 5
run group group --members 1000 --offline 900 --messages 100 --rate 20 --duration "$DUR"
run channel channel --members 10000 --offline 90000 --messages 50 --rate 20 --duration "$DUR"
# the same channel at 100 and 200 messages/s: 1,000,000 and 2,000,000
# deliveries/s offered (SPEC 6's fan-out rate), where a member's pushes
# start sharing writes
run channel-100 channel --members 10000 --offline 90000 --messages 500 --rate 100 --duration "$DUR"
run channel-200 channel --members 10000 --offline 90000 --messages 1000 --rate 200 --duration "$DUR"
run catchup catchup --messages 1000 --convs 50 --reps 20 --duration 60
stop_server

# dm on a server of its own, rates rising: the last ones overload the
# server (and the bench), which must not spill into other runs.
start_server dm
for r in $DM_RATES; do
    run "dm-$r" dm --pairs 100 --rate "$r" --duration "$DUR" --warmup 2
done
stop_server

# SPEC 6 asks for 100,000 msg/s sustained: the same rate for a minute.
# It runs at the edge of what two cores give server and bench together,
# so it starts on a quiet machine: the runs before it leave the machine
# busy for a while (load average about 1.8 when they end); started right
# after them the minute gave 86,010-88,521/s (runs 14 and 15), ad hoc on
# a quiet machine 93,094-99,989/s (docs/benchmarks.md).
if [ "$SUSTAINED" -gt 0 ]; then
    sync
    sleep "${BENCH_SETTLE:-15}"
    start_server dm-sustained
    run dm-sustained dm --pairs 100 --rate 100000 --duration "$SUSTAINED" --warmup 2
    stop_server
fi

echo "bench: results in $OUT/*.json, tables in $SUMMARY" >&2
if [ -n "$failed" ]; then
    echo "bench: runs that failed:$failed" >&2
    exit 1
fi

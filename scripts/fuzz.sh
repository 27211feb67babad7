#!/bin/sh
# Runs every libFuzzer harness in build-fuzz/fuzz/ for SECONDS seconds each
# (default 60), starting from its seed corpus in fuzz/corpus/<name>/.  New
# inputs go to a scratch copy, so the committed corpora stay as they are.
# A crash leaves its input in build-fuzz/crashes/ and fails the run.
set -eu
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
mkdir -p build-fuzz/crashes
found=0
for f in build-fuzz/fuzz/*; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    work=build-fuzz/corpus-work/$name
    mkdir -p "$work"
    [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/" 2>/dev/null || true
    dict=""
    [ -f "fuzz/$name.dict" ] && dict="-dict=fuzz/$name.dict"
    echo "fuzz: $name for ${SECONDS_EACH}s"
    found=1
    "$f" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix=build-fuzz/crashes/"$name"- -print_final_stats=0 $dict "$work" \
        >build-fuzz/"$name".log 2>&1 || {
        echo "fuzz: $name failed; see build-fuzz/$name.log"
        tail -30 build-fuzz/"$name".log
        exit 1
    }
done
[ $found = 1 ] || { echo "fuzz: no harness built"; exit 1; }
echo "fuzz: ok"

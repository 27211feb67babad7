#!/bin/sh
# The whole test suite, as `make test` and CI run it:
#   1. the layer check (scripts/check-layers.sh)
#   2. build/ (RelWithDebInfo): unit tests (ctest) and end-to-end tests
#      (pytest, tests/e2e) against the real parleyd
#   3. build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer, leaks
#      checked): the same unit and end-to-end tests; any report fails
#   4. each libFuzzer harness briefly over its seed corpus (build-fuzz/)
# After 2 (and again in 3, against the ASan parleyd): the web SDK's tests
# (node --test, sdk/js/test) and the browser test of the chat page
# (Chromium driven by playwright-core, web/test; screenshots of each step in
# build/web-test/).
# PARLEY_TEST_ASAN=0 skips 3 and 4 (make test-fast).  Extra pytest
# arguments can be passed in PYTEST_ARGS (e.g. "-k kick").
set -eu
cd "$(dirname "$0")/.."
JOBS=$(nproc 2>/dev/null || echo 2)
PY=/usr/bin/python3
start=$(date +%s)

say() { printf '\n=== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

say "layers"
./scripts/check-layers.sh

say "build"
make --no-print-directory build

say "unit tests"
(cd build && ctest --output-on-failure -j "$JOBS" --timeout 300)

say "end-to-end tests"
PARLEYD=build/parleyd PARLEY_BUILD=build $PY -m pytest -q -x -p no:cacheprovider tests/e2e ${PYTEST_ARGS:-}

# web_tests PARLEYD SHOTS: the SDK against a real parleyd, then the page in
# Chromium (the page is the one built in build/web).
web_tests() {
    if [ ! -f build/sdk-js/test/client.test.js ] || [ ! -f build/web/index.html ]; then
        echo "the web SDK and page were not built: node and npm are needed (scripts/deps.sh)"
        exit 1
    fi
    PARLEYD=$1 node --test build/sdk-js/test/*.test.js
    PARLEYD=$1 PARLEY_WEB_ROOT=build/web PARLEY_SHOTS=$2 node --test build/web-test-js/web/test/*.test.js
}

say "web SDK and browser tests"
web_tests build/parleyd build/web-test

if [ "${PARLEY_TEST_ASAN:-1}" != 0 ]; then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export LSAN_OPTIONS=suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0

    say "build (ASan+UBSan)"
    make --no-print-directory build-asan

    say "unit tests (ASan+UBSan)"
    (cd build-asan && ctest --output-on-failure -j "$JOBS" --timeout 600)

    say "end-to-end tests (ASan+UBSan)"
    PARLEYD=build-asan/parleyd PARLEY_BUILD=build-asan PARLEY_E2E_SLOW=1 \
        $PY -m pytest -q -x -p no:cacheprovider tests/e2e ${PYTEST_ARGS:-}

    say "web SDK and browser tests (ASan+UBSan parleyd)"
    web_tests build-asan/parleyd build-asan/web-test

    if command -v clang >/dev/null 2>&1; then
        say "fuzz harnesses over their seed corpora"
        make --no-print-directory build-fuzz
        ./scripts/fuzz.sh 5
    fi
fi

say "all tests passed"

#!/bin/sh
# Installs the Debian packages parley needs to build and test, if any are
# missing. Idempotent and non-interactive; run as root (or with sudo on PATH).
# prometheus (for promtool), systemd (for systemd-analyze) and python3-yaml
# check the deployment files of deploy/ (tests/e2e/test_deploy.py).
# Node.js and npm build the web SDK and chat page (web/build.mjs, which runs
# `npm ci`); Chromium runs the browser test (web/test/); curl and jq run the
# README's first chat. A Node.js that is
# already on PATH (e.g. NodeSource's, which bundles npm) is used as it is.
set -e
PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev libfuzzer-14-dev
libuv1-dev libwslay-dev libhttp-parser-dev libprotobuf-c-dev protobuf-c-compiler
libjansson-dev libsodium-dev libssl-dev librocksdb-dev libpq-dev libhiredis-dev
libcmocka-dev uthash-dev libunistring-dev python3 python3-pytest python3-websockets
python3-protobuf protobuf-compiler
python3-yaml prometheus systemd
chromium fonts-dejavu-core curl jq"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing

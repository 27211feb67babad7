# The commands people type.  CMake does the real build in build/ (and
# build-asan/ for the sanitizer run of the test suite).
#
#   make deps    install missing Debian packages (apt-get, non-interactive)
#   make         build into build/
#   make run     deps + build + start parleyd on the embedded store (./data)
#   make test    deps + build + the whole test suite, then again under ASan+UBSan
#   make fuzz    build the libFuzzer harnesses and run each for FUZZ_SECONDS
#   make bench   build, then the parley-bench suite against a fresh parleyd
#                (scripts/bench.sh; results in build/bench/)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 60

.PHONY: all deps build build-asan build-fuzz run test test-fast fuzz bench clean

all: build

deps:
	@./scripts/deps.sh

build:
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j $(JOBS)

build-asan:
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DPARLEY_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)

build-fuzz:
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DPARLEY_FUZZ=ON -DPARLEY_SANITIZE=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

run: deps build
	./build/parleyd $(ARGS)

test: deps
	@./scripts/test.sh

# The suite once, without the sanitizer pass: for quick local iterations.
test-fast: build
	@PARLEY_TEST_ASAN=0 ./scripts/test.sh

fuzz: deps build-fuzz
	@./scripts/fuzz.sh $(FUZZ_SECONDS)

bench: deps
	@./scripts/bench.sh

clean:
	rm -rf build build-asan build-fuzz

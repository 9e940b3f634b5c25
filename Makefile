# The README's commands. Every target that builds first makes sure the dependencies are in
# place (scripts/install-deps is idempotent and quick when nothing is missing): `make demo`
# only what building the programs needs, everything else the whole set (--all).
SHELL := /bin/bash
JOBS ?= $(shell nproc)
SOURCES = $(shell git ls-files '*.cpp' '*.hpp' 2>/dev/null || find daemon tests bench -name '*.[ch]pp')

.PHONY: deps demo-deps build test unit asan tsan release demo format format-check bench soak deb systemd-test clean fuzz

deps:
	./scripts/install-deps --all

demo-deps:
	./scripts/install-deps

build: deps
	cmake --preset dev >/dev/null
	cmake --build --preset dev -j $(JOBS)

# Every test: unit and integration, real binaries, real TLS on loopback; plus formatting.
test: build format-check
	ctest --preset dev -j $(JOBS)

unit: build
	ctest --preset dev -j $(JOBS) -L unit

asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)

# The tests labelled `threads` (threads in the test process, or the threaded daemon as a child) run under TSan;
# only their binaries are built.
TSAN_TARGETS = common_tests app_tests store_worker_tests app_integration_tests daemon_e2e_tests fake_api_tests upload_integration_tests metrics_tests upload_tests hooks_tests
tsan: deps
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan -j $(JOBS) --target $(TSAN_TARGETS)
	ctest --preset tsan -j $(JOBS) -L threads

# Every libFuzzer target (clang, ASan + UBSan) for FUZZ_SECONDS each (default 15) on a copy
# of its seed corpus; see tests/fuzz/README.md.
fuzz: deps
	JOBS=$(JOBS) ./tests/fuzz/run

release: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)

# The main job: the daemon against the built-in fake API with a demo drop folder
# (or the real API when NEBIUS_API_KEY is set). Builds only the three programs it runs, in
# build/demo, with no test dependencies.
demo: demo-deps
	cmake --preset demo >/dev/null
	cmake --build --preset demo -j $(JOBS)
	./scripts/demo

format:
	clang-format -i $(SOURCES)

format-check: deps
	@clang-format --dry-run -Werror $(SOURCES)

bench: release
	./bench/run-all

# The chaos soak (tests/soak/README.md): 500 archives through a fake API failing 30 % of
# uploads, the daemon SIGKILLed every ~15 s, an outside write lock, a full filesystem. At most
# 10 minutes; not part of `make test`. Needs root for the tmpfs (else that phase is skipped).
SOAK_ARGS ?=
soak: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS) --target modeldropd modeldrop-soak
	./build/release/tests/soak/modeldrop-soak --work-dir build/soak $(SOAK_ARGS)

# The Debian package, built offline: packaging/out/modeldrop_<version>_amd64.deb
deb: deps
	DEB_BUILD_OPTIONS="nocheck $${DEB_BUILD_OPTIONS:-}" ./packaging/build-deb

# The package under a real systemd 252, booted in a throwaway container (needs root): install,
# start, upload, reload, a second team's token credential, stop, SIGKILL, bad config, upgrade, purge.
# See tests/system/systemd-test.
DEB_VERSION = $(shell sed -n 's/^project.modeldrop VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
systemd-test: deb
	if [ -f tests/support/fake_api/CMakeLists.txt ]; then \
	  cmake --preset release >/dev/null && \
	  cmake --build --preset release --target modeldrop-fake-api -j $(JOBS); \
	fi
	./tests/system/systemd-test packaging/out/modeldrop_$(DEB_VERSION)_$$(dpkg --print-architecture).deb \
	  $$([ -x build/release/tests/support/fake_api/modeldrop-fake-api ] && echo build/release/tests/support/fake_api)

clean:
	rm -rf build

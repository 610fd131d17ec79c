# The README's two commands, `make run` and `make test`, and the rest of the developer loop.
BUILD   ?= build
JOBS    ?= 2
PREFIX  ?= /usr/local
HOME_DIR ?= $(CURDIR)/coop-data
DOMAIN  ?= coop.localhost
BASE_PORT ?= 8400

CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: all deps configure build test run bench install clean docs fuzz

all: build

deps:
	@scripts/install-deps

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DCMAKE_INSTALL_PREFIX=$(PREFIX)

configure: $(BUILD)/CMakeCache.txt

build: deps configure
	cmake --build $(BUILD) -j$(JOBS)

# Every unit and integration test through ctest; its summary line comes last.
test: build
	cd $(BUILD) && ctest -j$(JOBS) --output-on-failure --timeout 600

# A demo shard in ./coop-data: init once (a demo member, mail for the domain, the Monaco
# map), then run in the foreground until Ctrl-C; it prints the pages to open.
run: build
	@test -f $(HOME_DIR)/coop.toml || $(BUILD)/bin/coop --home $(HOME_DIR) init --domain $(DOMAIN) --base-port $(BASE_PORT) --demo
	$(BUILD)/bin/coop --home $(HOME_DIR) up --foreground

bench: build
	@scripts/install-deps --bench
	bench/run-all $(BUILD)/bin

# Every libFuzzer target for FUZZ_SECONDS each, on its corpus (clang, libraries instrumented,
# in build-fuzz/). New inputs land in build-fuzz/corpus/<target>; crashes in build-fuzz/crashes.
FUZZ_SECONDS ?= 60
fuzz: deps
	cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DCOOP_FUZZ=ON
	cmake --build build-fuzz -j$(JOBS) --target $$(cd tests/fuzz && ls fuzz_*.cpp | sed 's/\.cpp$$//')
	scripts/run-fuzzers build-fuzz $(FUZZ_SECONDS)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# Regenerate completions/ and man/ from the CLI's definition.
docs: build
	scripts/generate-docs $(BUILD)/bin/coop

clean:
	rm -rf $(BUILD)

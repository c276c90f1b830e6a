# lakebase — build, test, demo, bench.
# `make test` and `make demo` install their own Debian packages (spec/support/deps.sh).

CC       ?= cc
PG_INC   := $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
CFLAGS   ?= -O2 -g
# Flags the code needs, kept apart from CFLAGS so that a caller's CFLAGS (LuaRocks passes its own)
# cannot drop them.
LB_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -fPIC -pthread -I$(PG_INC)
LDLIBS   := -lpq -lcurl -lcjson -pthread
LUA51_INC  ?= /usr/include/lua5.1
LUA53_INC  ?= /usr/include/lua5.3
LUA54_INC  ?= /usr/include/lua5.4
LUAJIT_INC ?= /usr/include/luajit-2.1
ROCKSPEC := $(filter-out lakebase-scm-1.rockspec,$(wildcard lakebase-*-1.rockspec))

CORE_SRC := $(wildcard src/*.c)
BIND_SRC := $(wildcard src/bind/*.c)
# BUILD=build-x gives a separate build tree (parallel work, sanitizer builds).
BUILD    ?= build
CORE_OBJ := $(patsubst src/%.c,$(BUILD)/obj/core/%.o,$(CORE_SRC))
CTEST_SRC := $(wildcard tests/c/test_*.c)
CTEST_BIN := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(CTEST_SRC))

.PHONY: all build build-compat deps test test-c test-faults demo bench check-memory fuzz lint clean rock

all: build

build: $(BUILD)/lua5.4/lakebase/core.so $(BUILD)/luajit/lakebase/core.so $(BUILD)/liblakebase.a $(CTEST_BIN)

# The binding for PUC Lua 5.1 and 5.3 as well (make test runs a subset of the specs on them).
build-compat: $(BUILD)/lua5.1/lakebase/core.so $(BUILD)/lua5.3/lakebase/core.so

deps:
	@bash spec/support/deps.sh

$(BUILD)/obj/core/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LB_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/liblakebase.a: $(CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# One binding per interpreter over the same core objects: $(BUILD)/<interp>/lakebase/core.so.
define binding
$$(BUILD)/obj/$(1)/%.o: src/bind/%.c
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$(LB_CFLAGS) -I$(2) -MMD -MP -c $$< -o $$@

$$(BUILD)/$(1)/lakebase/core.so: $$(patsubst src/bind/%.c,$$(BUILD)/obj/$(1)/%.o,$$(BIND_SRC)) $$(CORE_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) -shared -o $$@ $$^ $$(LDFLAGS) $$(LDLIBS)

-include $$(patsubst src/bind/%.c,$$(BUILD)/obj/$(1)/%.d,$$(BIND_SRC))
endef
$(eval $(call binding,lua5.1,$(LUA51_INC)))
$(eval $(call binding,lua5.3,$(LUA53_INC)))
$(eval $(call binding,lua5.4,$(LUA54_INC)))
$(eval $(call binding,luajit,$(LUAJIT_INC)))

$(BUILD)/tests/%: tests/c/%.c $(BUILD)/liblakebase.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LB_CFLAGS) -Isrc $< -o $@ $(BUILD)/liblakebase.a $(LDFLAGS) $(LDLIBS)

# The whole suite: C tests and busted specs on Lua 5.4 and LuaJIT against the fixtures, a subset on
# PUC Lua 5.1 and 5.3 (spec/support/run_tests.sh). Last line: "tests: N passed, N failed".
test: deps
	@$(MAKE) --no-print-directory build build-compat
	@bash spec/support/run_tests.sh

demo: deps
	@$(MAKE) --no-print-directory build
	@bash examples/run_demo.sh

bench:
	@bash spec/support/deps.sh bench
	@$(MAKE) --no-print-directory build
	@bash bench/run.sh

# luacheck, cppcheck and clang-tidy (installs the two C analysers when missing).
lint:
	@bash spec/support/static_analysis.sh

# Fault scenarios against the real fixtures (also part of make test); figures in docs/RELIABILITY.md.
test-faults: deps
	@$(MAKE) --no-print-directory build
	@bash spec/support/faults.sh

# C tests and the busted suite under ASan+UBSan (clang); zero errors, zero leaks from our code.
check-memory:
	@bash spec/support/deps.sh memory
	@bash spec/support/check_memory.sh

# libFuzzer targets for every parser of the C core (FUZZ_SECONDS each, default 60).
fuzz:
	@bash spec/support/deps.sh memory
	@bash fuzz/run.sh

# A source rock of the tracked files: $(ROCK_DIR)/lakebase-<version>.src.rock, which
# `luarocks install ./lakebase-<version>.src.rock` builds where there is no checkout (and no network).
# `luarocks pack` fetches source.url from a temporary folder, so it packs a copy of the rockspec that
# names the archive by absolute path; the checked-in rockspec then replaces that copy in the rock.
ROCK_DIR ?= .
ROCK_NAME := $(ROCKSPEC:.rockspec=)
ROCK_SRC := lakebase-$(patsubst lakebase-%-1.rockspec,%,$(ROCKSPEC))
rock:
	@test -n "$(ROCKSPEC)" || { echo "make rock: no lakebase-<version>-1.rockspec here" >&2; exit 1; }
	@git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "make rock: needs a git checkout (it packs the tracked files)" >&2; exit 1; }
	rm -rf $(BUILD)/rock && mkdir -p $(BUILD)/rock/pack $(BUILD)/rock/$(ROCK_SRC)
	git ls-files -z | xargs -0 cp -P --parents -t $(BUILD)/rock/$(ROCK_SRC)
	tar -C $(BUILD)/rock -czf $(BUILD)/rock/$(ROCK_SRC).tar.gz $(ROCK_SRC)
	sed 's|^  url = ".*",|  url = "file://$(abspath $(BUILD)/rock)/$(ROCK_SRC).tar.gz",|' $(ROCKSPEC) >$(BUILD)/rock/pack/$(ROCKSPEC)
	cd $(BUILD)/rock/pack && luarocks pack $(ROCKSPEC) >/dev/null
	cp $(ROCKSPEC) $(BUILD)/rock/ && cd $(BUILD)/rock && zip -q pack/$(ROCK_NAME).src.rock $(ROCKSPEC)
	mkdir -p $(ROCK_DIR) && mv $(BUILD)/rock/pack/$(ROCK_NAME).src.rock $(ROCK_DIR)/
	@echo "$(ROCK_DIR)/$(ROCK_NAME).src.rock"

clean:
	rm -rf build build-* lakebase_core.so lakebase-*.src.rock

-include $(CORE_OBJ:.o=.d)

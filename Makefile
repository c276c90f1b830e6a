# lakebase — build, test, demo, bench.
# `make test` and `make demo` install their own Debian packages (spec/support/deps.sh).

CC       ?= cc
PG_INC   := $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
CFLAGS   ?= -O2 -g
# Flags the code needs, kept apart from CFLAGS so that a caller's CFLAGS (LuaRocks passes its own)
# cannot drop them.
LB_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -fPIC -pthread -I$(PG_INC)
LDLIBS   := -lpq -lcurl -lcjson -pthread
LUA54_INC  ?= /usr/include/lua5.4
LUAJIT_INC ?= /usr/include/luajit-2.1

CORE_SRC := $(wildcard src/*.c)
BIND_SRC := $(wildcard src/bind/*.c)
# BUILD=build-x gives a separate build tree (parallel work, sanitizer builds).
BUILD    ?= build
CORE_OBJ := $(patsubst src/%.c,$(BUILD)/obj/core/%.o,$(CORE_SRC))
BIND54_OBJ := $(patsubst src/bind/%.c,$(BUILD)/obj/lua5.4/%.o,$(BIND_SRC))
BINDJIT_OBJ := $(patsubst src/bind/%.c,$(BUILD)/obj/luajit/%.o,$(BIND_SRC))
CTEST_SRC := $(wildcard tests/c/test_*.c)
CTEST_BIN := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(CTEST_SRC))

.PHONY: all build deps test test-c test-faults demo bench check-memory fuzz lint clean rock rock-install

all: build

build: $(BUILD)/lua5.4/lakebase/core.so $(BUILD)/luajit/lakebase/core.so $(BUILD)/liblakebase.a $(CTEST_BIN)

deps:
	@bash spec/support/deps.sh

$(BUILD)/obj/core/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LB_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/lua5.4/%.o: src/bind/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LB_CFLAGS) -I$(LUA54_INC) -MMD -MP -c $< -o $@

$(BUILD)/obj/luajit/%.o: src/bind/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LB_CFLAGS) -I$(LUAJIT_INC) -MMD -MP -c $< -o $@

$(BUILD)/liblakebase.a: $(CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lua5.4/lakebase/core.so: $(BIND54_OBJ) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/luajit/lakebase/core.so: $(BINDJIT_OBJ) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/%: tests/c/%.c $(BUILD)/liblakebase.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LB_CFLAGS) -Isrc $< -o $@ $(BUILD)/liblakebase.a $(LDFLAGS) $(LDLIBS)

# The whole suite: C tests and busted specs on Lua 5.4 and LuaJIT against the fixtures.
# Last line: "tests: N passed, N failed".
test: deps
	@$(MAKE) --no-print-directory build
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

# luarocks `make` backend: build the C core for the interpreter LuaRocks targets, then install.
rock:
	$(CC) $(CFLAGS) $(LB_CFLAGS) -I$(LUA_INCDIR) -Isrc -shared -o lakebase_core.so $(BIND_SRC) $(CORE_SRC) $(LDFLAGS) $(LDLIBS)

rock-install:
	mkdir -p $(INST_LIBDIR)/lakebase $(INST_LUADIR)/lakebase $(INST_BINDIR)
	cp lakebase_core.so $(INST_LIBDIR)/lakebase/core.so
	cp lua/lakebase/*.lua $(INST_LUADIR)/lakebase/
	for d in lua/lakebase/*/; do [ -d "$$d" ] || continue; mkdir -p $(INST_LUADIR)/lakebase/$$(basename $$d); cp $$d*.lua $(INST_LUADIR)/lakebase/$$(basename $$d)/; done
	cp bin/lakebase $(INST_BINDIR)/lakebase

clean:
	rm -rf build build-* lakebase_core.so

-include $(CORE_OBJ:.o=.d) $(BIND54_OBJ:.o=.d) $(BINDJIT_OBJ:.o=.d)

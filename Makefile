# eloqkv_fdw: PGXS build of the extension. The engine (src/engine, src/resp) is built by CMake
# into build/ as a static library, which this Makefile links into eloqkv_fdw.so; `make engine`
# also builds the engine's tests and benchmarks. Source lists come from the directory layout.

EXTENSION   = eloqkv_fdw
MODULE_big  = eloqkv_fdw
OBJS        = $(patsubst %.cc,%.o,$(sort $(wildcard src/pg/*.cc src/cache/*.cc)))
DATA        = $(sort $(wildcard src/sql/eloqkv_fdw--*.sql))
# ":=" so that an empty list really is empty (PGXS tests them with ifdef).
REGRESS    := $(basename $(notdir $(sort $(wildcard sql/*.sql))))
ISOLATION  := $(basename $(notdir $(sort $(wildcard specs/*.spec))))
REGRESS_OPTS = --load-extension=eloqkv_fdw
ISOLATION_OPTS = --load-extension=eloqkv_fdw
# TAP tests (t/*.pl) start their own clusters. `make installcheck` runs them after pg_regress;
# `make prove_installcheck` (alias: tapcheck) runs only them. initdb refuses to run as root, so
# as root they skip: run them as another user on a tree that user can write
# (scripts/test.sh does: runuser -u postgres -- make tapcheck on a copy of the tree).
TAP_TESTS   = 1
EXTRA_CLEAN = results output_iso tmp_check tmp_check_iso log regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)

# SANITIZE=address,undefined (any -fsanitize= list): the glue and the engine built with those
# sanitizers, the engine in build-sanitize/; any finding aborts the process. The glue's objects
# live in the tree, so build it in a tree of its own (scripts/test.sh does, in a copy). With ASan,
# PG_CONFIG must name a Postgres linked with ASan (scripts/build-postgres-asan.sh): Debian's
# postgres 15 does not survive ASan's runtime preloaded (docs/reliability.md).
ifdef SANITIZE
ENGINE_BUILD_DIR ?= build-sanitize
SANITIZE_FLAGS = -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
ENGINE_CMAKE_FLAGS = -DELOQKV_SANITIZE=$(SANITIZE) -DELOQKV_TESTS=OFF -DELOQKV_BENCH=OFF \
                     -DELOQKV_WERROR=OFF
# The TAP tests skip what a sanitizer makes meaningless (ASan's allocator and memory figures).
export ELOQKV_SANITIZE := $(SANITIZE)
endif
ENGINE_BUILD_DIR ?= build
ENGINE_LIB = $(ENGINE_BUILD_DIR)/libeloqkv_engine.a
RESP_LIB = $(ENGINE_BUILD_DIR)/libeloqkv_resp.a

# Warnings are errors in CI (CI=true), as in the CMake build.
# (Not in sanitizer builds: gcc's warnings there include false positives, such as -Wrestrict.)
ifneq ($(filter-out false,$(CI)),)
ifndef SANITIZE
WERROR = -Werror
endif
endif

# -isystem: Postgres's headers are not ours to fix; keep their warnings out of our build.
# -Wno-unused-parameter: callbacks must match Postgres's signatures.
PG_CXXFLAGS = -std=c++20 -fPIC -O2 -g -Wall -Wextra -Wno-unused-parameter $(WERROR) \
              -isystem $(shell $(PG_CONFIG) --includedir-server) -Isrc $(SANITIZE_FLAGS)
SHLIB_LINK += $(RESP_LIB) $(ENGINE_LIB) -luring -lstdc++ -lpthread $(SANITIZE_FLAGS)

# No LLVM bitcode: the glue is C++20 and Debian's PGXS would need a matching clang.
override with_llvm = no

include $(PGXS)

%.o: %.cc
	$(CXX) $(PG_CXXFLAGS) $(CPPFLAGS) -c -o $@ $<

$(OBJS): $(wildcard src/pg/*.h) $(wildcard src/cache/*.h) $(wildcard src/resp/*.h) src/engine/eloqkv.h src/engine/status.h

$(shlib): $(ENGINE_LIB) $(RESP_LIB)

# cmake is incremental: always ask it, it decides what to rebuild.
# FORCE is phony because Makefile.global declares every target .SECONDARY, under which a missing
# prerequisite without a file never makes its target out of date.
.PHONY: engine clean-engine FORCE
# One cmake run builds both libraries: a rule naming both would run it twice at once under -j.
$(RESP_LIB): $(ENGINE_LIB) ;
engine $(ENGINE_LIB): FORCE
	@test -f $(ENGINE_BUILD_DIR)/CMakeCache.txt || \
	  cmake -S . -B $(ENGINE_BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(ENGINE_CMAKE_FLAGS)
	cmake --build $(ENGINE_BUILD_DIR) -j2

FORCE:

clean-engine:
	rm -rf $(ENGINE_BUILD_DIR)

# PGXS defines prove_installcheck as a recipe, not a target.
.PHONY: prove_installcheck tapcheck
prove_installcheck tapcheck:
	$(prove_installcheck)

# The TAP tests' shared helpers (t/lib/RespNode.pm).
PG_PROVE_FLAGS += -I t/lib

# memoria: PGXS build of the C++ extension.
EXTENSION  = memoria
MODULE_big = memoria
OBJS = src/memoria.o src/guard.o src/bucket.o src/session.o src/catalog.o src/args.o src/statements.o \
       src/expressions.o src/dirty_log.o src/triggers.o src/dirty_set.o src/capture.o src/horizon.o src/create.o \
       src/ddl_guard.o src/adopt.o src/alter.o src/refresh.o src/verify.o src/backfill.o src/worker.o src/cron.o src/live.o src/view_source.o src/additive.o src/delta_set.o src/citus.o
# Install scripts: one per release, and the update path between them.  The
# current release's are built from sql/src/ (catalog.sql, api.sql and the
# update's parts), so the install and the update share one API definition.
EXT_VERSION = 0.8.0
DATA_built = sql/memoria--$(EXT_VERSION).sql sql/memoria--0.7.0--$(EXT_VERSION).sql
DATA = $(filter-out $(DATA_built),$(wildcard sql/memoria--*.sql))
PGFILEDESC = "memoria - exact incremental rollups"

# Test suites, against the server in PGHOST/PGPORT (tools/test.sh starts a
# throwaway one and runs them all).  Each suite also runs alone:
#   make installcheck                 pg_regress (test/regress) + isolation specs
#   make installcheck REGRESS=api ISOLATION=        one regression suite
#   make pgtap [PGTAP=test/pgtap/security.sql]      pgTAP suites (pg_prove)
#   make tap [TAP=test/tap/001_worker.pl]           TAP suites (their own clusters; not as root)
REGRESS = api errors time_zones aggregates capture refresh_window backfill updated_at boundary \
          alter_source names drop_extension retention lifecycle failures chains calendar live view_sources dimension_expressions additive citus_parts upgrade
REGRESS_OPTS = --inputdir=test/regress --outputdir=regress_out
ISOLATION = $(sort $(basename $(notdir $(wildcard test/isolation/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=test/isolation/out

PG_CONFIG ?= pg_config
PG_CXXFLAGS = -std=c++17 -Wno-register -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
# make CHECKS=1: warnings are errors, and memoria's own invariants
# (MEMORIA_ASSERT) are checked.  CI builds this way.
ifeq ($(CHECKS),1)
PG_CXXFLAGS += -Werror -DMEMORIA_CHECKS
endif
SHLIB_LINK += -lstdc++
# The JIT bitcode step does not know our C++ flags; memoria needs no JIT inlining.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/memoria--$(EXT_VERSION).sql: sql/src/catalog.sql sql/src/api.sql sql/src/citus.sql
	{ echo '-- memoria $(EXT_VERSION) (built from sql/src/ by make: edit those files).'; \
	  printf '%s\n' '\echo Use "CREATE EXTENSION memoria" to load this file. \quit'; cat $^; } > $@
sql/memoria--0.7.0--$(EXT_VERSION).sql: sql/src/update--0.7.0--$(EXT_VERSION)-pre.sql sql/src/api.sql sql/src/citus.sql \
                                    sql/src/update--0.7.0--$(EXT_VERSION)-post.sql
	{ echo '-- memoria 0.7.0 -> $(EXT_VERSION) (built from sql/src/ by make: edit those files).'; \
	  printf '%s\n' '\echo Use "ALTER EXTENSION memoria UPDATE" to load this file. \quit'; cat $^; } > $@

# Every object depends on every header (PGXS tracks no header dependencies:
# a changed struct would otherwise leave stale objects with the old layout).
$(OBJS): $(wildcard src/*.hpp)


# memoriactl, the command-line client (cli/): a program of its own, since
# PGXS builds one module per Makefile.  Installed next to psql.
PG_INCLUDEDIR := $(shell $(PG_CONFIG) --includedir)
PG_LIBDIR := $(shell $(PG_CONFIG) --libdir)
all: memoriactl
memoriactl: cli/memoriactl.cpp
	$(CXX) -std=c++17 -O2 -Wall -Wextra $(if $(filter 1,$(CHECKS)),-Werror) -I$(PG_INCLUDEDIR) -o $@ $< -L$(PG_LIBDIR) -lpq
install: install-memoriactl
install-memoriactl: memoriactl
	$(INSTALL_PROGRAM) memoriactl '$(DESTDIR)$(bindir)/memoriactl'
EXTRA_CLEAN += memoriactl
.PHONY: install-memoriactl

# Benchmarks (not tests): bench/run.sh, on a throwaway cluster; BENCH_ARGS=--scale 10
bench:
	bash bench/run.sh $(BENCH_ARGS)
.PHONY: bench

PGTAP_DB ?= memoria_tap
PGTAP ?= $(wildcard test/pgtap/*.sql)
pgtap:
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $(PGTAP_DB)" -c "CREATE DATABASE $(PGTAP_DB)"
	psql -X -q -d $(PGTAP_DB) -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION memoria"
	pg_prove -d $(PGTAP_DB) $(PGTAP)

TAP ?= $(abspath $(wildcard test/tap/*.pl))
tap:
	PG_REGRESS=$(pgxsdir)/src/test/regress/pg_regress PERL5LIB=$(pgxsdir)/src/test/perl prove $(TAP)
.PHONY: pgtap tap

# make format: clang-format the C++ sources (.clang-format).
format:
	clang-format -i src/*.cpp src/*.hpp cli/*.cpp
.PHONY: format

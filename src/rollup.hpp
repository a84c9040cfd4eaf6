// rollup.hpp: a rollup's definition as stored in memoria.rollups, and the
// helpers every entry point uses to read the catalog and run SQL.
#pragma once
#include "bucket.hpp"
#include "pg.hpp"

namespace memoria {

// Rollup: one row of memoria.rollups, with column names resolved now
// (attribute numbers are stored, so renamed columns keep working).
struct Rollup {
    int32 id;
    char *name;
    Oid owner;
    Oid source, target, dirty_log;
    AttrNumber time_attnum;
    Oid time_type;
    TimeKind kind;
    int ndims;
    AttrNumber *dim_attnums;
    int nscope;
    AttrNumber *scope_attnums;
    int nmeasures;
    char **measures;       // 'expression AS alias', validated
    char **measure_names;
    Interval bucket;
    int64 width_usecs;
    char *time_zone;
    char *filter;          // NULL when none
    char *search_path;
    // invalidation => 'updated_at': INSERTs are found by scanning this column
    // (0 in trigger mode), up to a horizon at least safety_lag in the past.
    AttrNumber updated_at_attnum;
    Interval safety_lag;
    // Settings that change how the stored expression text parses or what it
    // computes (DateStyle, IntervalStyle, ...), as the creator had them:
    // "name=value" strings, re-applied whenever the text is parsed again.
    int nsettings;
    char **settings;
};

// PARSE_SETTINGS: the settings recorded with a rollup (see Rollup::settings).
extern const char *const PARSE_SETTINGS[];
extern const int NUM_PARSE_SETTINGS;

// catalog_has_scan_mark: whether memoria.rollup_state has scanned_through
// (SQL version 0.2.0 on; the library also serves 0.1.0's catalog).
bool catalog_has_scan_mark(void);

// extension_owner: the role that owns schema memoria (runs catalog updates).
Oid extension_owner(void);

// catalog_has_column: whether memoria's catalog table has the column (the
// library also serves older SQL versions until ALTER EXTENSION UPDATE).
bool catalog_has_column(const char *table, const char *column);

// CatalogSession: memoria's own statements on its catalog and logs run as
// the extension's owner with search_path pinned to pg_catalog, so that no
// object of the caller's (an operator, a function) can stand in for a
// built-in one.  They touch only extension-owned tables and built-in types.
struct CatalogSession {
    int guc_nest;
    Oid user;
    int sec_context;
};
CatalogSession enter_catalog_session(void);
void leave_catalog_session(CatalogSession s);

// The role switch used to run SQL as someone else; undone by restore_user
// or by the (sub)transaction abort that an ERROR causes.
struct SavedUser {
    Oid user;
    int sec_context;
};
SavedUser become_user(Oid role);
void restore_user(SavedUser saved);

// RollupSession: the rollup's SQL runs as its owner, in a security-restricted
// operation, with its search_path and time zone (and jit off).  Undone by
// leave_rollup_session, or by the abort an ERROR causes.
struct RollupSession {
    int guc_nest;
    SavedUser user;
};
RollupSession enter_rollup_session(const Rollup *r);
void leave_rollup_session(RollupSession s);

// load_rollup: the named rollup, checking the caller may manage it
// (ERROR 42704 if missing, 42501 if another owner's).
Rollup *load_rollup(const char *name);
// find_rollup_by_id: the rollup with this id, or NULL; no privilege check
// (the capture trigger and the DDL hooks act for whoever wrote).
Rollup *find_rollup_by_id(int32 id);
// load_rollups: every rollup the caller may manage, by name.
List *load_rollups(void);
// can_manage: whether the current user is a member of role owner.
bool can_manage(Oid owner);
// check_can_manage: ERROR 42501 unless can_manage.
void check_can_manage(const Rollup *r);

// spi_exec: run SQL with parameters through SPI; ERROR on failure.
int spi_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, bool read_only);
// spi_int64: column `col` of the first result row as int64 (0 if NULL).
int64 spi_int64(int col);

// record_dependency: pg_depend entry "object depends on referenced".
void record_dependency(Oid classid, Oid objid, Oid refclassid, Oid refobjid, DependencyType type);

// quoted names
char *qualified_relation_name(Oid relid);
char *column_name(Oid relid, AttrNumber attnum);  // quoted

// Advisory lock of one rollup (transaction scoped): class MEMORIA_LOCK_CLASS.
constexpr int32 MEMORIA_LOCK_CLASS = 0x6d656d6f;  // 'memo'
bool try_lock_rollup(int32 id);
void lock_rollup(int32 id);

}  // namespace memoria

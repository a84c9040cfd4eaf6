// session.hpp: as whom, and how, memoria runs SQL.
//
// Two identities run memoria's statements (docs/design.md, "Trust boundary"):
//   - the *catalog session*: the extension's owner, search_path pinned to
//     pg_catalog, for memoria's own tables and DDL (built-in types only);
//   - a *rollup session*: the rollup's owner, in a security-restricted
//     operation, with the settings recorded at creation, for everything
//     that evaluates the user's expressions or compares the user's values.
// Both are undone by their leave_* call, or by the (sub)transaction abort
// an ERROR causes.  Also here: the per-rollup advisory lock, SPI helpers,
// quoted names and array helpers.
#pragma once
#include "pg.hpp"

namespace memoria {

struct Rollup;

// extension_owner: the role that owns schema memoria.
Oid extension_owner(void);

// A role switch (SECURITY_LOCAL_USERID_CHANGE).
struct SavedUser {
    Oid user;
    int sec_context;
};
SavedUser become_user(Oid role);
void restore_user(SavedUser saved);

struct CatalogSession {
    int guc_nest;
    SavedUser user;
};
CatalogSession enter_catalog_session(void);
// enter_catalog_session_as: the same pinned search_path, as `role` (memoria's
// DDL on a rollup table that may run the owner's code, e.g. a domain's
// DEFAULT: with the owner's rights only).
CatalogSession enter_catalog_session_as(Oid role);
// run_as_extension: one statement of memoria's own in the catalog session
// (connects to SPI itself), then CommandCounterIncrement.
void run_as_extension(const char *sql);
void leave_catalog_session(CatalogSession s);

// The settings recorded with a rollup at creation (Rollup::settings), since
// they change what its expressions' text means: NUM_PARSE_SETTINGS of them.
extern const int NUM_PARSE_SETTINGS;
const char *parse_setting_name(int i);

struct RollupSession {
    int guc_nest;
    SavedUser user;
};
RollupSession enter_rollup_session(const Rollup *r);
void leave_rollup_session(RollupSession s);

// try_in_subtransaction: run body(arg) in a subtransaction.  On an ERROR
// it is rolled back and the error returned, copied into the caller's
// memory context (a query cancel is re-raised: it must end the caller too);
// NULL on success.  With keep false, what body did is rolled back even on
// success (a dry run); memory it allocated in the caller's context stays.
ErrorData *try_in_subtransaction(void (*body)(void *), void *arg, bool keep = true);

// can_manage: whether the current user is a member of role owner.
bool can_manage(Oid owner);
// can_observe: can_manage, or a member of pg_monitor (status, read-only).
bool can_observe(Oid owner);

// spi_exec: run SQL with parameters through SPI; ERROR on failure.
int spi_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, bool read_only);
// spi_int64 / spi_bool: column `col` of the first result row (0 / false if
// NULL or no row).
int64 spi_int64(int col);
bool spi_bool(int col);

// record_dependency: pg_depend entry "object depends on referenced".
void record_dependency(Oid classid, Oid objid, Oid refclassid, Oid refobjid, DependencyType type);

// internal_function: the qualified name of one of memoria's internal
// functions: memoria_internal.<name> (memoria._<name> before 0.4.0).
const char *internal_function(const char *name);

// Quoted names.
char *qualified_relation_name(Oid relid);
char *column_name(Oid relid, AttrNumber attnum);
// column_not_null: whether the column is NOT NULL (false if missing).
bool column_not_null(Oid rel, AttrNumber attnum);
// column_type_sql: a column's SQL type with its collation; with base_type, a
// domain's base type instead.
char *column_type_sql(Oid rel, AttrNumber a, bool base_type = false);

// Arrays to and from Datums (palloc'd in the current context).
Datum oid_array_datum(List *oids);
Datum int2_array_datum(List *ints);
Datum text_array_datum(List *strings);
AttrNumber *int2_array(Datum d, int *n);
char **text_array(Datum d, int *n);

// The advisory lock of one rollup, transaction scoped: the same lock as
// pg_advisory_xact_lock(MEMORIA_LOCK_CLASS, id).
constexpr int32 MEMORIA_LOCK_CLASS = 0x6d656d6f;  // 'memo'
bool try_lock_rollup(int32 id);
void lock_rollup(int32 id);

}  // namespace memoria

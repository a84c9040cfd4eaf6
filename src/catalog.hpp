// catalog.hpp: memoria's catalog, the one owner of its two tables.
//
//   memoria.rollups      one row per rollup: its definition (Rollup below);
//                        columns are stored as the source's attribute numbers,
//                        so renamed columns keep working.
//   memoria.rollup_state one row per rollup: what refreshes did (watermark,
//                        last outcome, backfill progress, capture state);
//                        refreshes lock only this row.
// Every statement on them is here, and runs in the catalog session
// (session.hpp): as the extension's owner, search_path pinned.
#pragma once
#include "bucket.hpp"
#include "session.hpp"

namespace memoria {

// Rollup: one row of memoria.rollups.
struct Rollup {
    int32 id;
    char *name;
    Oid owner;           // the source's owner now: a rollup is its source owner's
    Oid granted_owner;   // the owner memoria last granted the dirty log to
    Oid source, target, dirty_log;
    AttrNumber time_attnum;
    Oid time_type;
    TimeKind kind;
    int ndims;
    AttrNumber *dim_attnums;  // 0 for an expression
    char **dim_exprs;         // NULL, or per dimension its expression (NULL for a column)
    int nscope;
    AttrNumber *scope_attnums;  // a subset of the dimensions: the dirty keys' columns
    int nmeasures;
    char **measures;       // 'expression AS alias', validated
    char **measure_names;
    Interval bucket;
    int64 width_usecs;
    char *time_zone;
    char *filter;          // NULL when none
    char *search_path;     // the creator's: resolves the expressions
    // invalidation => 'updated_at': INSERTs are found by scanning this column
    // (0 in trigger mode), up to a horizon at least safety_lag in the past.
    AttrNumber updated_at_attnum;
    Interval safety_lag;
    // Settings that change what the expressions' text means (DateStyle,
    // IntervalStyle, ...), as the creator had them: "name=value" strings,
    // re-applied by every rollup session (none: PostgreSQL's defaults).
    int nsettings;
    char **settings;
    // Buckets that ended longer ago than this never change (has_freeze).
    bool has_freeze;
    Interval freeze_after;
    // The rollup table's columns memoria writes, by attribute number: the
    // bucket, the dimensions, then the measures (its live columns in order;
    // 0 where the table has too few).
    AttrNumber *target_attnums;
    // The table whose rows carry the time column: the source itself, or the
    // fact table of a view source (view_source.hpp), with its attribute
    // numbers of the time and scope columns.  Invalid when the view no
    // longer fits (the DDL hooks refuse that).
    Oid fact;
    AttrNumber fact_time_attnum;
    AttrNumber *fact_scope_attnums;
    struct ViewJoin *join;  // a view source's join; NULL for a table
    Oid link_log;           // memoria_state.links_<id>, when the view joins other tables
    // memoria_state.deltas_<id>: inserted rows' partial aggregates, when
    // every measure can be merged (additive.hpp); InvalidOid otherwise.
    Oid delta_log;
    // Restored elsewhere (pg_restore, pg_upgrade, a copied database) and not
    // adopted yet (adopt.cpp).
    bool restored;
};

// Where a rollup's catalog marks were recorded: "system id:database oid".
char *this_database_mark(void);

// catalog_has_column: whether a catalog table has the column (the library
// also serves older SQL versions until ALTER EXTENSION UPDATE).
bool catalog_has_column(const char *table, const char *column);

// load_rollup: the named rollup, checking the caller may manage it
// (ERROR 42704 if missing, 42501 if another owner's).
Rollup *load_rollup(const char *name);
// find_rollup_by_id: the rollup with this id, or NULL; no privilege check
// (the capture trigger and the DDL hooks act for whoever wrote).
Rollup *find_rollup_by_id(int32 id);
// read_rollup_for_capture: find_rollup_by_id, read from the catalog's
// indexes directly: the capture trigger's first call in a backend (which
// Citus starts for most shard statements) plans no statement.
Rollup *read_rollup_for_capture(int32 id);
// load_rollups: every rollup the caller may manage, lower levels of a chain
// first (a rollup before the rollups of its table), then by name.
List *load_rollups(void);
// rollup_level: 0 for a rollup of a table, 1 + its source's level for a
// rollup of a rollup's table.
int rollup_level(const Rollup *r, List *all);
// dependent_rollups: the rollups whose source is r's table.
List *dependent_rollups(const Rollup *r);
// all_rollups: every rollup, by id (the DDL hooks: no privilege check).
List *all_rollups(void);
// check_can_manage: ERROR 42501 unless the caller is a member of the owner.
void check_can_manage(const Rollup *r);

// Definitions.
int32 next_rollup_id(void);
bool rollup_name_taken(const char *name);
void insert_rollup(const Rollup *r);  // and its state row
void delete_rollup(int32 id);
void set_refresh_interval(int32 id, const Interval *every);
void set_dirty_log(int32 id, Oid log);
void set_delta_log(int32 id, Oid log);  // InvalidOid: none
void set_freeze_after(int32 id, const Interval *freeze_after);
void rename_rollup(int32 id, const char *name);
void set_measures(int32 id, List *measures, List *names);  // char * each
// mark_needs_backfill: the rollup must be backfilled again (new measures);
// any backfill in progress starts over.
void mark_needs_backfill(int32 id);
bool needs_backfill(const Rollup *r);
void set_granted_owner(int32 id, Oid owner);
void mark_adopted(int32 id);
void count_frozen_discarded(int32 id, int64 n);

// lock_rollup_state: lock the rollup's state row; returns scanned_through
// (updated_at mode; -infinity if never set).  Under REPEATABLE READ or
// SERIALIZABLE this fails with a serialization error if another refresh
// committed after this transaction's snapshot: recomputing from that older
// snapshot could overwrite newer rows with stale ones.
TimestampTz lock_rollup_state(const Rollup *r);
void set_scanned_through(const Rollup *r, TimestampTz t);

// A replaced view source's rebuild waits until every transaction older than
// this full transaction id has ended (0: none; refresh.cpp).
void set_rebuild_after(const Rollup *r, int64 full_xid);
int64 rebuild_after(const Rollup *r);

// read_watermark: false if the rollup has none yet.
bool read_watermark(const Rollup *r, TimestampTz *watermark);

// RefreshRecord: what a refresh (or refresh_window) did.
struct RefreshRecord {
    const char *status;  // ok | busy | error | idle
    const char *error;   // NULL unless status is error
    TimestampTz started;
    bool advance;          // move the watermark up to candidate
    TimestampTz candidate;
    bool backfilled;       // the whole source was recomputed
    int64 failing;         // keys that could not be recomputed (left pending); -1: as before
};
// record_refresh: store it; the watermark moves up (never back) unless the
// rollup still needs a backfill.  Returns false if it has no watermark.
bool record_refresh(const Rollup *r, const RefreshRecord *rec, TimestampTz *watermark);

// Backfill progress (memoria.backfill): with finished NULL only reads the
// resume point; otherwise stores progress, and on finishing clears it --
// marking the rollup backfilled, with the watermark at the backfill's
// start, when the whole source was covered.
struct BackfillStep {
    bool has_next, has_progress, has_finished, has_started;
    TimestampTz next;
    float4 progress;
    bool finished;
    TimestampTz started;
    bool complete;
};
void record_backfill(const Rollup *r, const BackfillStep *step, bool *has_resume, TimestampTz *resume_at,
                     bool *has_started, TimestampTz *resume_started);

// Capture state (triggers.cpp): whether capture was found lost, and the
// tables of the source's tree as memoria last saw them.
bool capture_marked_lost(const Rollup *r);
void mark_capture_lost(const Rollup *r, bool lost);
void remember_capture_tables(const Rollup *r, List *tables);
List *remembered_capture_tables(const Rollup *r);

// DueRollup: a rollup the worker should refresh now.
struct DueRollup {
    char *name;
    Oid owner;
};
// due_rollups: rollups whose refresh_interval has passed (in `into`);
// *sleep_ms is lowered to the wait until the next one is due.
List *due_rollups(long *sleep_ms, MemoryContext into);

}  // namespace memoria

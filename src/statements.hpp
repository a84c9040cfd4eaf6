// statements.hpp: every SQL statement memoria runs on a rollup's tables (its
// source, rollup table and dirty log), with its parameter layout.  The
// catalog's statements are in catalog.cpp, trigger DDL in triggers.cpp.
//
// Every identifier is quoted; user expressions (measures, filter) are pasted
// only into their own slot, each on lines of its own, after create_rollup has
// proved each one parses as exactly one expression.  Values are parameters.
// The common ones: $1 bucket width (interval), $2 time zone (text); see each
// statement for the rest.  Statements run in the rollup's session.
#pragma once
#include "catalog.hpp"

namespace memoria {

// The most source ranges a recompute reads (refresh merges beyond that).
constexpr int MAX_SOURCE_RANGES = 16;

// Params: a statement's parameters, built in the order its text expects.
struct Params {
    int n;
    Oid types[4 + 2 * MAX_SOURCE_RANGES];
    Datum values[4 + 2 * MAX_SOURCE_RANGES];
};
// bucket_params: $1 width, $2 time zone.
Params bucket_params(const Rollup *r);
// window_params: $1, $2, then $3 first and $4 last bucket (the time type).
Params window_params(const Rollup *r, Datum first, Datum last);

// log_state_sql: whether the dirty log has keys, and a rebuild marker (a
// NULL bucket: TRUNCATE, a dropped partition, capture that came back).
char *log_state_sql(const Rollup *r);
// log_empty_sql: whether the dirty log is empty.
char *log_empty_sql(const Rollup *r);
// (Both count the delta log's partials as keys, additive.hpp.)

// merge_deltas_sql: claim the delta log's partials, add up those of each
// group and add them to the rollup's rows; returns one row: groups, rows
// upserted, partials discarded.  With frozen, $1 is the first bucket not
// frozen, and partials of earlier buckets are discarded.
char *merge_deltas_sql(const Rollup *r, bool frozen);
// demote_deltas_sql: the delta log's partials become dirty keys.
char *demote_deltas_sql(const Rollup *r);

// claim_keys_sql: delete and return the log rows of the dirty keys (all, or
// with `limited` those of the first $1 keys by bucket, $1 bigint; with
// `frozen` too, the first $1 keys from bucket $2 on, and every row before
// it): each as one value of the log's row type, and its bucket.
char *claim_keys_sql(const Rollup *r, bool limited, bool frozen = false);

// recompute_keys_sql: recompute the claimed keys, upsert changed groups and
// delete vanished ones; returns one row: keys, rows upserted, rows deleted.
// Parameters (recompute_keys_params): $1, $2, $3 the claimed log rows (an
// array of the log's row type), then ($4, $5), ($6, $7)...: the source
// value ranges (inclusive) their buckets cover, then the array of their
// buckets.  Passing the keys as a parameter (rather than a CTE over the
// DELETE) lets the planner see how many there are.  null_keys: whether a
// claimed key has a NULL scope value (then keys are matched as values of
// the log's row type, whose equality treats NULLs as equal; otherwise
// column by column, which hashes faster and which the planner estimates).
char *recompute_keys_sql(const Rollup *r, int nranges, bool null_keys);
Params recompute_keys_params(const Rollup *r, Datum claimed, int nranges, const Datum *lo, const Datum *hi,
                             Datum buckets);

// recompute_window_sql: the same for every bucket in [$3, $4] (window_params).
enum WindowFlags {
    WINDOW_CLAIM_LOG = 1,     // also remove every log row it sees (a full rebuild)
    WINDOW_TARGET_EMPTY = 2,  // the rollup has no row there: insert, compare nothing
    WINDOW_EXACT_BOUNDS = 4,  // window_bounds_exact: no per-row bucket check
};
char *recompute_window_sql(const Rollup *r, int flags);
// window_is_empty_sql: whether the rollup table has no row in [$3, $4].
char *window_is_empty_sql(const Rollup *r);
// window_covers_source_sql: whether no source row lies outside [$3, $4].
char *window_covers_source_sql(const Rollup *r);

// verify_sql: groups in [$3, $4] where the rollup differs from the source.
char *verify_sql(const Rollup *r);

// scan_updated_sql: (updated_at mode) log the keys of the rows whose
// updated_at column is in ($3, $4] (timestamptz).
char *scan_updated_sql(const Rollup *r);

// dirty_all_keys_sql: log the key of every row of rel (the source or one of
// its partitions); bucket_params.
char *dirty_all_keys_sql(const Rollup *r, Oid rel);

// expand_rebuild_sql: the rebuild marker replaced by the keys of every
// rollup row (with dirty_all_keys_sql of the source: every key a rebuild
// would recompute, one by one).
char *expand_rebuild_sql(const Rollup *r);

// pending_keys_sql: distinct keys waiting in the dirty log.
char *pending_keys_sql(const Rollup *r);

// source_range_sql: the first and last value of the source's time column.
char *source_range_sql(const Rollup *r);

// mark_rebuild_sql: the "rebuild everything" marker (catalog session: the
// log has built-in types only, and no default).
char *mark_rebuild_sql(const Rollup *r);

// keys_updated_since_sql: updated_at mode: the keys of source rows stamped
// after $3 ($1, $2: bucket width and zone).
char *keys_updated_since_sql(const Rollup *r);
// live_view_sql: CREATE VIEW <view> (the rollup's _live view: live.cpp).
char *live_view_sql(const Rollup *r, const char *view);

// The rollup's <target>_live view (live.cpp): its qualified name (NULL, with
// quiet, when the table's name leaves no room), made and dropped.
char *live_view_name(const Rollup *r, bool quiet);
void create_live_view(const Rollup *r);
void drop_live_view(const Rollup *r);
Oid find_live_view(const Rollup *r);
// Around ALTER TABLE on a rollup's source or table (ddl_guard.cpp's hooks).
void live_views_before_ddl(Node *parsetree);
void live_views_after_ddl(void);

}  // namespace memoria

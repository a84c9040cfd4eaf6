// sqlgen.hpp: the SQL statements memoria runs for a rollup.
//
// Every identifier is quoted; user expressions (measures, filter) are pasted
// only into their own slot, each on lines of its own, after create_rollup has
// proved each one parses as exactly one expression.  Values are parameters:
//   $1 bucket width (interval), $2 time zone (text), and
//   recompute_keys_sql:   $3 the claimed log rows (array of the log's row type),
//                         then ($4, $5), ($6, $7)...: the source value ranges
//                         (inclusive) their buckets cover, then the array of
//                         their buckets
//   recompute_window_sql, verify_sql: $3 first bucket, $4 last bucket
//   scan_updated_sql:     $3, $4 the updated_at range (timestamptz)
#pragma once
#include "rollup.hpp"

namespace memoria {

// claim_keys_sql: delete and return the log rows of the dirty keys (all, or
// those of the first $1 keys): each as one value of the log's row type, and
// its bucket.
char *claim_keys_sql(const Rollup *r, bool limited);

// recompute_keys_sql: recompute the keys of the claimed rows ($3), upsert
// changed groups and delete vanished ones.  Returns one row: keys, rows
// upserted, rows deleted.  Passing the keys as a parameter (rather than a
// CTE over the DELETE) lets the planner see how many there are.
char *recompute_keys_sql(const Rollup *r, int nranges);

// The most source ranges a recompute reads (refresh merges beyond that).
constexpr int MAX_SOURCE_RANGES = 16;

// recompute_window_sql: the same for every bucket in [$3, $4]; with
// claim_log it also removes every log row it sees (used for a full rebuild).
// With target_empty (the rollup has no row in the window: see
// window_is_empty_sql) it inserts without comparing.  With exact_bounds
// (see window_bounds_exact) the source is read by its time range alone.
char *recompute_window_sql(const Rollup *r, bool claim_log, bool target_empty, bool exact_bounds);
char *window_is_empty_sql(const Rollup *r);

// verify_sql: groups in [$3, $4] where the rollup differs from the source.
char *verify_sql(const Rollup *r);

// scan_updated_sql: (updated_at mode) log the keys of the rows whose
// updated_at column is in ($3, $4].
char *scan_updated_sql(const Rollup *r);

// dirty_all_keys_sql: log the key of every row of rel (the source or one of
// its partitions).
char *dirty_all_keys_sql(const Rollup *r, Oid rel);

// pending_keys_sql: distinct keys waiting in the dirty log.
char *pending_keys_sql(const Rollup *r);

}  // namespace memoria

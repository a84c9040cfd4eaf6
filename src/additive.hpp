// additive.hpp: the additive path.  When every measure of a rollup can be
// merged (count, sum of integers or numeric, min/max of a type without
// collation, each with an optional FILTER), an INSERT does not dirty its
// key: the capture trigger folds the inserted rows into one partial
// aggregate per group (delta_set.cpp) and logs it in the rollup's *delta
// log*, memoria_state.deltas_<id>.  A refresh then adds those partials to
// the rollup rows instead of re-reading their buckets.  Updates, deletes,
// TRUNCATE, frozen buckets and rebuilds keep the recompute path.
//
// Exactness: a partial is applied exactly once, and never on top of a
// recompute that saw its rows.  Every statement that recomputes keys or
// buckets deletes, in the same statement (one snapshot), the partials of
// those keys or buckets: rows it saw are in its result, and their partials,
// committed with them, are visible to it and gone with it.  Partials it did
// not see belong to rows it did not see.  The merge claims partials with
// DELETE ... RETURNING in the statement that applies them.
#pragma once
#include "catalog.hpp"

namespace memoria {

// memoria.additive_path: off, inserts dirty their keys as before (a
// writer's choice: a refresh deals with whatever the logs hold).
extern bool additive_path;

// The most measures and dimensions the additive path serves.
constexpr int MAX_ADDITIVE_MEASURES = 32;
constexpr int MAX_ADDITIVE_DIMS = 32;

// How one measure's partials are made (in the writer) and merged.
enum class MergeKind : int8 {
    CountStar,   // count(*): int8 partial, added
    Count,       // count(x): int8, added
    SumInt,      // sum(int2|int4): int8, added
    SumInt8,     // sum(int8): numeric (accumulated as int8), added
    SumNumeric,  // sum(numeric): numeric, added
    Min,         // min(x): x's type, least
    Max,         // max(x): x's type, greatest
};

// AdditivePlan: each measure's kind, its argument and FILTER, and the
// rollup's filter, as expressions over the analysed source (varno 1).
struct AdditivePlan {
    int nmeasures;
    MergeKind kind[MAX_ADDITIVE_MEASURES];
    Oid arg_type[MAX_ADDITIVE_MEASURES];    // InvalidOid for count(*)
    Oid partial_type[MAX_ADDITIVE_MEASURES];  // the measure's type
    Expr *arg[MAX_ADDITIVE_MEASURES];       // NULL for count(*)
    Expr *agg_filter[MAX_ADDITIVE_MEASURES];  // NULL: none
    Expr *filter;                            // the rollup's WHERE; NULL: none
};

// additive_problem: why the rollup cannot take the additive path, or NULL
// (then *plan says how).  The writer evaluates the arguments and filters,
// so they may call only built-in leakproof, immutable functions: nothing of
// another role's runs as the writer, and no value can make a write fail.
char *additive_problem(const Rollup *r, AdditivePlan *plan);

// delta_log_columns_sql: the delta log's columns (bucket, g1..gn: the
// dimensions' base types, then one per measure: sum_<i>, min_<i> or max_<i>
// of the measure's type; the name says how it merges).
char *delta_log_columns_sql(const Rollup *r, const AdditivePlan *plan);

// settle_delta_log: give the rollup a delta log for its measures now, if
// they allow one; the old one (if any) goes, its partials made dirty keys
// first.  Locks the old log and then the source (writers wait until commit).
// Records it in the catalog and in *r.
void settle_delta_log(Rollup *r, bool in_update);

}  // namespace memoria

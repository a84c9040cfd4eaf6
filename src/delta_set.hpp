// delta_set.hpp: the additive path's writer side (additive.hpp): this
// transaction's inserted rows folded into one partial aggregate per group,
// written to the delta logs before commit (delta_set.cpp says how).
#pragma once
#include "additive.hpp"
#include "dirty_set.hpp"

namespace memoria {

// DeltaShape: one delta log as the capture trigger fills it.
struct DeltaShape {
    Oid log;        // the delta log
    Oid dirty_log;  // its rollup's dirty log: a group that cannot be merged becomes a dirty key there
    Oid time_type;
    int ndims;
    Oid dim_type[MAX_ADDITIVE_DIMS];  // base types, as in the log
    int16 dim_typlen[MAX_ADDITIVE_DIMS];
    bool dim_typbyval[MAX_ADDITIVE_DIMS];
    int nscope;
    int scope_dim[MAX_SCOPE];  // which dimension each scope column is
    int nmeasures;
    MergeKind kind[MAX_ADDITIVE_MEASURES];
    Oid partial_type[MAX_ADDITIVE_MEASURES];
    int16 arg_typlen[MAX_ADDITIVE_MEASURES];
    bool arg_typbyval[MAX_ADDITIVE_MEASURES];
    FmgrInfo *cmp[MAX_ADDITIVE_MEASURES];  // min/max: the type's btree comparison (type cache)
};

// remember_delta_shape: the backend's copy of a shape (stable address);
// pending groups of the same log in another shape become dirty keys first.
const DeltaShape *remember_delta_shape(const DeltaShape *shape);

// delta_add: one inserted row; key is its group (key_start over the delta
// log with ndims columns, its bucket, its dimension values); values[i] the
// input of measure i, skip[i] when the row adds nothing to it (a NULL
// input, its FILTER false).
void delta_add(const DeltaShape *shape, const char *key, int len, const Datum *values, const bool *skip);

// flush_deltas: write the pending groups to their delta logs (at the top
// level of the transaction), or turn them into dirty keys (in a
// subtransaction, whose rollback would take the rows with it).
void flush_deltas(void);
// demote_deltas_now: every pending group becomes a dirty key now (a
// reader of _live in this transaction counts them as pending keys).
void demote_deltas_now(void);

void init_delta_set(void);

}  // namespace memoria

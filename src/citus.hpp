// citus.hpp: rollups of Citus distributed tables, the co-located mode.
//
// A rollup of a hash-distributed table whose distribution column is in the
// rollup's scope is a *distributed rollup*: its table is distributed too,
// co-located with the source, so each group lives on the node that holds its
// source rows.  Each pair of co-located shards (source shard, rollup table
// shard) is an ordinary memoria rollup on the node that holds them, a *shard
// rollup* named like its table shard: capture, dirty log, refresh, verify
// and the watermark all work there unchanged, in the node's own transactions.
// The coordinator keeps only the definition (memoria.citus_rollups) and fans
// its calls out to the shard rollups (sql/src/citus.sql); a shard that has no
// shard rollup yet (a new rollup, a moved or split shard) gets one, filled
// from its source shard, before its first refresh.
//
// Nothing here links to Citus: it is found through its catalog, and without
// it every function below answers false.
#pragma once
#include "pg.hpp"

namespace memoria {

// citus_table: whether rel is a Citus table (distributed, reference or
// citus-local) on this node.
bool citus_table(Oid rel);
// citus_shard: whether rel is a shard of a Citus table on this node.
bool citus_shard(Oid rel);
// citus_rollup_exists: whether memoria.citus_rollups has a rollup of this name.
bool citus_rollup_exists(const char *name);
// citus_grant_rollup_schema: the grant create_rollup gives a rollup's owner
// on schema memoria_rollup, on every worker too (Citus creates the rollup
// table's shards there as the owner).
void citus_grant_rollup_schema(Oid owner);
// citus_check_drop: ERROR if a dropped relation is a distributed rollup's
// source or table (the sql_drop hook): unlike a rollup of a local table, no
// CASCADE drops a distributed rollup, because Citus' own table conversions
// (undistribute_table, alter_distributed_table) drop with CASCADE too.
void citus_check_drop(List *relations);
// citus_forward: call memoria_internal.<function> with the caller's
// arguments (the same argument types), returning its result; a set-returning
// caller passes its ReturnSetInfo on.
Datum citus_forward(FunctionCallInfo fcinfo, const char *function);
// citus_append_refreshes: memoria.refresh(NULL, max_keys): add the rows of
// the distributed rollups the caller may refresh to rsinfo's tuplestore.
void citus_append_refreshes(FunctionCallInfo fcinfo);

}  // namespace memoria

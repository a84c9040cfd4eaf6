// citus.hpp: rollups of Citus tables, in three modes.
//
// A rollup of a hash-distributed table whose distribution column is in the
// rollup's scope is a *distributed rollup* (the co-located mode): its table
// is distributed too,
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
// One that does not group by the distribution column (the partial mode) is
// a distributed rollup of the same kind into `<table>_partials`, grouped by
// the dimensions and a per-shard value of the distribution column: each
// shard's partial rows.  A trigger on each partials shard logs the buckets
// it changes into `<table>_changes`, co-located; a refresh on the coordinator
// claims them and combines those buckets' partial rows into `<table>`, on
// the coordinator, in one distributed transaction.
//
// A rollup of a reference or citus-local table (the placement mode) is an
// ordinary rollup of the coordinator's placement of it, which every write
// reaches in its own transaction; memoria.citus_placements keeps its table
// from being dropped under it.
//
// Nothing here links to Citus: it is found through its catalog, and without
// it every function below answers false.
#pragma once
#include "pg.hpp"

namespace memoria {

// citus_table: whether rel is a Citus table (distributed, reference or
// citus-local) on this node.
bool citus_table(Oid rel);
// citus_shard: whether rel is a shard of a Citus table on this node (with
// hash_only, of a hash-distributed one).
bool citus_shard(Oid rel, bool hash_only = false);
// citus_rollup_exists: whether memoria.citus_rollups has a rollup of this name.
bool citus_rollup_exists(const char *name);
// citus_distribute_rollup_table: create_rollup of a distributed source
// (memoria_internal.create_rollup_part, mode 'table'): distribute its new
// table `target` co-located with `source`, and record the rollup in
// memoria.citus_rollups with its definition (create_rollup's arguments in
// fcinfo; search_path, the caller's).
void citus_distribute_rollup_table(FunctionCallInfo fcinfo, Oid source, Oid target, bool default_schema,
                                   const char *search_path);
// citus_rollups_exist: whether this node has distributed rollups (is their
// coordinator).
bool citus_rollups_exist(void);
// citus_due_rollups_sql: a catalog query of the coordinator's distributed
// rollups (both modes) as due_rollups reads them (name, owner, milliseconds
// until due: a refresh_interval after their last refresh from here), which
// the background worker refreshes by fanning out; NULL on a node without.
const char *citus_due_rollups_sql(void);
// citus_drop_before_extension: DROP EXTENSION memoria CASCADE (the
// ddl_command_start hook), by the extension's owner, where Citus stays:
// every distributed rollup is dropped first (citus_drop_all_rollups).
// Left to the cascade, a coordinator that holds shards deadlocks: the
// cascade drops its shards of a rollup table in this session while Citus'
// drop of the table drops them again from another.
void citus_drop_before_extension(void);
// citus_check_ddl: after DDL on tables (the ddl_command_end hook): the
// distributed rollups of those tables must still be valid definitions (each
// shard rollup is made from it again after a shard move), else ERROR.
void citus_check_ddl(List *tables);
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

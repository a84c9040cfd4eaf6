// dirty_log.hpp: a rollup's dirty log, memoria_state.dirty_<id>: columns
// bucket + the scope columns (their base types), no index, append-only for
// writers (the capture trigger, dirty_set.cpp), claimed by refreshes.  A row
// with a NULL bucket means "rebuild everything".  The log belongs to the
// extension; the rollup's owner may SELECT, INSERT and DELETE.
#pragma once
#include "catalog.hpp"

namespace memoria {

// create_dirty_log: the log of rollup `id` over the source's time type and
// scope columns (attribute numbers), granted to owner; it goes with the
// rollup table and the extension (in_update: made by the update script,
// not a member of the extension).  Returns it.
Oid create_dirty_log(int32 id, Oid source, Oid time_type, List *scope, Oid owner, Oid target, bool in_update);
// create_log_table: memoria_state.<name> (columns: their SQL), as the dirty
// log is made (create_dirty_log, and a view source's link log).
// The owner may read and claim its rows; it may add rows to a log where a
// forged row costs only a recompute (with_insert), not to the delta log,
// whose rows are added to the rollup as they are.
Oid create_log_table(const char *name, const char *columns, Oid owner, Oid target, bool in_update,
                     bool with_insert = true);
// log_privileges: what the rollup's owner is granted on one of its logs.
const char *log_privileges(const Rollup *r, Oid log);

// check_log_pristine: ERROR unless the log is still as memoria made it (no
// trigger, rule, index, policy or check constraint): memoria writes it with
// elevated rights, and heap_multi_insert maintains no index.
void check_log_pristine(Relation log);

// mark_rebuild: log a "rebuild everything" key.
void mark_rebuild(const Rollup *r);

// mark_all_keys_dirty: log the key of every row of rel (the source or a
// partition joining or leaving it), as the rollup's owner.
void mark_all_keys_dirty(const Rollup *r, Oid rel);

// renew_dirty_log: replace the log of a rollup made before 0.3.0 (owned by
// the rollup's owner, who may have left triggers, rules or indexes on it)
// by a fresh one, moving its keys over as the owner.
void renew_dirty_log(Rollup *r);

}  // namespace memoria

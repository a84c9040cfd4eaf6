// adopt.hpp: a rollup across owners and dumps.
//
// A rollup belongs to whoever owns its source now: ALTER TABLE ... OWNER TO
// and REASSIGN OWNED move it along (follow_source_owner moves the grants).
// pg_dump carries memoria's catalog (its rows name tables, roles and types,
// which a restore resolves again), the rollup tables, the dirty logs and the
// triggers, but not what PostgreSQL records beside them (pg_depend) nor the
// database they were recorded in: a rollup whose catalog row was written in
// another database (pg_restore, pg_upgrade, CREATE DATABASE ... TEMPLATE) is
// *restored* until memoria adopts it, once its triggers are back.
#pragma once
#include "catalog.hpp"

namespace memoria {

// follow_source_owner: if the source changed hands, the dirty log's grant
// and the rollup table go to the new owner.
void follow_source_owner(const Rollup *r);

// settle_schema_grant: CREATE on memoria_rollup (which indexing a rollup
// table there needs) for a role that owns a table there, and for no other.
void settle_schema_grant(Oid role, bool revoke = true);

// adopt_rollup: record again everything a dump does not carry: the
// triggers' layout (and the guard trigger), the dependencies, the grants;
// the rollup is then at home in this database.
void adopt_rollup(const Rollup *r);

// settle_restored: true when the rollup is at home here (adopting it now if
// it was restored and its triggers and key are back); false while a restore
// is still under way, with *waiting_for saying what is missing.
bool settle_restored(const Rollup *r, char **waiting_for);

// restored_ready: whether a restored rollup's triggers and key are back (it
// can be adopted); otherwise *waiting_for says what is missing.
bool restored_ready(const Rollup *r, char **waiting_for);

}  // namespace memoria

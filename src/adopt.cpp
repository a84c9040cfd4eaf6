// adopt.cpp: a rollup across owners and dumps (adopt.hpp).
#include <initializer_list>
#include "adopt.hpp"
#include "citus.hpp"
#include "dirty_log.hpp"
#include "expressions.hpp"
#include "guard.hpp"
#include "statements.hpp"
#include "triggers.hpp"

namespace memoria {

static Oid relation_owner(Oid rel) {
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
    if (!HeapTupleIsValid(tup)) return InvalidOid;
    Oid owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
    ReleaseSysCache(tup);
    return owner;
}

void settle_schema_grant(Oid role, bool revoke) {
    if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)) || role == extension_owner()) return;
    Oid nsp = get_namespace_oid("memoria_rollup", false);
    Oid types[2] = {OIDOID, OIDOID};
    Datum values[2] = {ObjectIdGetDatum(role), ObjectIdGetDatum(nsp)};
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relowner = $1 AND relnamespace = $2), "
             "EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a "
             "        WHERE n.oid = $2 AND a.grantee = $1 AND a.privilege_type = 'CREATE')",
             2, types, values, NULL, false);
    bool owns = spi_bool(1);
    bool granted = spi_bool(2);
    leave_catalog_session(cs);
    SPI_finish();
    // Only a change writes the schema's row (Citus runs a node's shard DDL
    // in parallel sessions of one transaction, which would wait for each
    // other there).
    if (owns == granted || (!owns && !revoke)) return;
    run_as_extension(psprintf("%s CREATE ON SCHEMA memoria_rollup %s %s", owns ? "GRANT" : "REVOKE",
                              owns ? "TO" : "FROM", quote_identifier(GetUserNameFromId(role, false))));
}

void follow_source_owner(const Rollup *r) {
    if (r->owner == r->granted_owner) return;
    const char *to = quote_identifier(GetUserNameFromId(r->owner, false));
    // The previous owner (unless it is gone, or owns the extension) loses
    // its grants: DROP ROLE then needs nothing of memoria's.
    bool old_exists = SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(r->granted_owner));
    for (Oid log_oid : {r->dirty_log, r->link_log, r->delta_log}) {
        if (!OidIsValid(log_oid)) continue;
        const char *log = qualified_relation_name(log_oid);
        run_as_extension(psprintf("GRANT %s ON %s TO %s", log_privileges(r, log_oid), log, to));
        if (old_exists && r->granted_owner != extension_owner())
            run_as_extension(psprintf("REVOKE ALL ON %s FROM %s", log,
                                      quote_identifier(GetUserNameFromId(r->granted_owner, false))));
    }
    // The rollup table follows (REASSIGN OWNED moved it already).
    if (relation_owner(r->target) != r->owner)
        run_own_ddl(psprintf("ALTER TABLE %s OWNER TO %s", qualified_relation_name(r->target), to));
    if (char *view = live_view_name(r, true)) {
        Oid view_oid = RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(view)), NoLock, true);
        if (OidIsValid(view_oid) && relation_owner(view_oid) != r->owner)
            run_own_ddl(psprintf("ALTER VIEW %s OWNER TO %s", view, to));
    }
    // Indexes on a table in memoria_rollup need CREATE on the schema.  (A
    // Citus shard's old owner keeps it: the nodes' sessions changing the
    // owner of their shards in one transaction would each revoke.)
    settle_schema_grant(r->owner);
    if (old_exists) settle_schema_grant(r->granted_owner, !citus_shard(r->source, true));
    set_granted_owner(r->id, r->owner);
    CommandCounterIncrement();
}

// replace_dependency: exactly one pg_depend entry "object depends on ref".
static void replace_dependency(Oid classid, Oid objid, Oid refclassid, Oid refobjid, DependencyType type) {
    deleteDependencyRecordsForSpecific(classid, objid, type, refclassid, refobjid);
    record_dependency(classid, objid, refclassid, refobjid, type);
}

void adopt_rollup(const Rollup *r) {
    Oid ext = get_extension_oid("memoria", false);
    // As create_rollup records them (create.cpp, dirty_log.cpp).
    replace_dependency(RelationRelationId, r->target, RelationRelationId, r->source, DEPENDENCY_NORMAL);
    replace_dependency(RelationRelationId, r->target, ExtensionRelationId, ext, DEPENDENCY_NORMAL);
    replace_dependency(RelationRelationId, r->dirty_log, RelationRelationId, r->target, DEPENDENCY_AUTO);
    replace_dependency(RelationRelationId, r->dirty_log, ExtensionRelationId, ext, DEPENDENCY_AUTO);
    for (Oid log : {r->link_log, r->delta_log})
        if (OidIsValid(log)) {
            replace_dependency(RelationRelationId, log, RelationRelationId, r->target, DEPENDENCY_AUTO);
            replace_dependency(RelationRelationId, log, ExtensionRelationId, ext, DEPENDENCY_AUTO);
        }
    CommandCounterIncrement();
    reconcile_triggers(r, true);
    ensure_guard_trigger(r);
    record_trigger_dependencies(r);
    record_function_dependencies(r);
    follow_source_owner(r);
    mark_adopted(r->id);
    // Writers cached its capture while it was restored (without the
    // additive path, capture.cpp): they look again.
    ListCell *lc;
    foreach (lc, find_all_inheritors(r->source, NoLock, NULL)) CacheInvalidateRelcacheByRelid(lfirst_oid(lc));
    CommandCounterIncrement();
}

// has_unique_index: pg_dump makes the rollup table's key after its rows.
static bool has_unique_index(Oid rel) {
    Oid types[1] = {OIDOID};
    Datum values[1] = {ObjectIdGetDatum(rel)};
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1 AND indisunique)", 1, types, values,
             NULL, false);
    bool found = spi_bool(1);
    leave_catalog_session(cs);
    SPI_finish();
    return found;
}

bool restored_ready(const Rollup *r, char **waiting_for) {
    // pg_restore makes the triggers and keys last (post-data): until they
    // are all back, its rows may still be loading.
    char *problem = capture_problem(r);
    if (problem == NULL) problem = guard_problem(r);
    if (problem == NULL && !has_unique_index(r->target))
        problem = psprintf("the rollup table %s has no key yet", qualified_relation_name(r->target));
    *waiting_for = problem;
    return problem == NULL;
}

bool settle_restored(const Rollup *r, char **waiting_for) {
    if (!r->restored) return true;
    if (!restored_ready(r, waiting_for)) return false;
    adopt_rollup(r);
    return true;
}

}  // namespace memoria

using namespace memoria;

// memoria_internal.adopt(rollup_id): the update script's adoption of every
// rollup (this version's guard trigger, dependencies, grants); by hand (a
// superuser's), a restored rollup whose dump lacked its triggers, which it
// makes: writes made without them were missed, so the rollup is rebuilt.
MEMORIA_FUNCTION(memoria_adopt) {
    // Under the rollup's lock, as every adoption (ddl_guard.cpp), read after it.
    lock_rollup(PG_GETARG_INT32(0));
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL) PG_RETURN_VOID();
    bool missed = r->restored && capture_problem(r) != NULL;
    adopt_rollup(r);
    if (missed) mark_rebuild(r);
    PG_RETURN_VOID();
}

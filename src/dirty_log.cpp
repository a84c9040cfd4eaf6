// dirty_log.cpp: creating a rollup's dirty log, and memoria's writes to it
// other than the capture trigger's (dirty_log.hpp).
#include "dirty_log.hpp"
#include "statements.hpp"

namespace memoria {

const char *log_privileges(const Rollup *r, Oid log) {
    return log == r->delta_log ? "SELECT, DELETE" : "SELECT, INSERT, DELETE";
}

Oid create_log_table(const char *name, const char *columns, Oid owner, Oid target, bool in_update, bool with_insert) {
    char *log_sql = quote_qualified_identifier("memoria_state", name);
    // Vacuumed often: every refresh deletes what it claims.
    run_as_extension(psprintf("CREATE TABLE %s (%s) WITH (autovacuum_vacuum_scale_factor = 0, "
                              "autovacuum_vacuum_threshold = 1000)",
                              log_sql, columns));
    // Published by a FOR ALL TABLES publication, its DELETEs need a replica
    // identity: there is no key, so the whole row.
    run_as_extension(psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", log_sql));
    run_as_extension(psprintf("GRANT %s ON %s TO %s", with_insert ? "SELECT, INSERT, DELETE" : "SELECT, DELETE", log_sql,
                              quote_identifier(GetUserNameFromId(owner, false))));
    Oid log = get_relname_relid(name, get_namespace_oid("memoria_state", false));
    // Made by the update script (renew_dirty_log), it would become a member
    // of the extension: it is a rollup's, like the ones create_rollup makes.
    if (in_update)
        deleteDependencyRecordsForClass(RelationRelationId, log, ExtensionRelationId, DEPENDENCY_EXTENSION);
    record_dependency(RelationRelationId, log, RelationRelationId, target, DEPENDENCY_AUTO);
    record_dependency(RelationRelationId, log, ExtensionRelationId, get_extension_oid("memoria", false),
                      DEPENDENCY_AUTO);
    return log;
}

Oid create_dirty_log(int32 id, Oid source, Oid time_type, List *scope, Oid owner, Oid target, bool in_update) {
    StringInfoData cols;
    initStringInfo(&cols);
    appendStringInfo(&cols, "bucket %s", format_type_be(time_type));
    // Base types: memoria writes the log with elevated rights, so no DEFAULT
    // or CHECK of a user's domain may run there.
    ListCell *lc;
    foreach (lc, scope)
        appendStringInfo(&cols, ", %s %s", quote_identifier(get_attname(source, lfirst_int(lc), false)),
                         column_type_sql(source, lfirst_int(lc), true));
    return create_log_table(psprintf("dirty_%d", id), cols.data, owner, target, in_update);
}

void check_log_pristine(Relation log) {
    Form_pg_class c = log->rd_rel;
    if (c->relkind != RELKIND_RELATION || c->relhastriggers || c->relhasrules || c->relhasindex || c->relchecks > 0 ||
        c->relrowsecurity || c->relhassubclass)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("memoria dirty log \"%s\" is not as memoria made it", RelationGetRelationName(log)),
                        errdetail("It has a trigger, rule, index, policy, constraint or child table."),
                        errhint("Drop what was added to it, or drop the rollup and create it again.")));
}

void mark_rebuild(const Rollup *r) {
    Relation log = table_open(r->dirty_log, RowExclusiveLock);
    check_log_pristine(log);
    table_close(log, NoLock);
    run_as_extension(mark_rebuild_sql(r));
}

void mark_all_keys_dirty(const Rollup *r, Oid rel) {
    char relkind = get_rel_relkind(rel);
    if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE) return;  // only tables hold rows
    Params p = bucket_params(r);
    SPI_connect();
    RollupSession session = enter_rollup_session(r);
    spi_exec(dirty_all_keys_sql(r, rel), p.n, p.types, p.values, NULL, false);
    leave_rollup_session(session);
    SPI_finish();
}

struct CopyKeys {
    const Rollup *r;
    Oid old;
};

static void copy_keys_body(void *arg) {
    CopyKeys *c = (CopyKeys *) arg;
    SPI_connect();
    RollupSession session = enter_rollup_session(c->r);
    spi_exec(psprintf("INSERT INTO %s SELECT * FROM %s", qualified_relation_name(c->r->dirty_log),
                      qualified_relation_name(c->old)),
             0, NULL, NULL, NULL, false);
    leave_rollup_session(session);
    SPI_finish();
}

// copy_keys: move the old log's rows into the new one, as the rollup's
// owner (whatever the owner left on the old log runs with the owner's
// rights only); on failure (the owner changed its columns), mark a rebuild.
static void copy_keys(const Rollup *r, Oid old) {
    CopyKeys c = {r, old};
    if (try_in_subtransaction(copy_keys_body, &c) != NULL)
        mark_rebuild(r);  // may raise in turn: the update then fails, as it should
}

void renew_dirty_log(Rollup *r) {
    Oid old = r->dirty_log;
    // The new log's name must be free.  The old one's owner may have moved
    // it out of memoria_state, where nobody but the extension creates
    // tables; still in place, it steps aside to a name free there.
    Oid nsp = get_namespace_oid("memoria_state", false);
    if (get_rel_namespace(old) == nsp && strcmp(get_rel_name(old), psprintf("dirty_%d", r->id)) == 0) {
        char *aside = psprintf("dirty_%d_before_0_3_0", r->id);
        for (int n = 2; OidIsValid(get_relname_relid(aside, nsp)); n++)
            aside = psprintf("dirty_%d_before_0_3_0_%d", r->id, n);
        RenameRelationInternal(old, aside, false, false);
        CommandCounterIncrement();
    }
    List *scope = NIL;
    for (int i = 0; i < r->nscope; i++) scope = lappend_int(scope, r->scope_attnums[i]);
    r->dirty_log = create_dirty_log(r->id, r->source, r->time_type, scope, r->owner, r->target, true);
    set_dirty_log(r->id, r->dirty_log);
    CommandCounterIncrement();
    copy_keys(r, old);
    // The old log goes, whatever it became, with whatever depends on it.
    ObjectAddress address = {RelationRelationId, old, 0};
    performDeletion(&address, DROP_CASCADE, PERFORM_DELETION_INTERNAL);
    CommandCounterIncrement();
}

}  // namespace memoria

// ddl_guard.cpp: the DDL hooks' C side.  After DDL on a rollup's source
// tree or on a function its expressions call, the rollup must still fit:
// renames of the source and of the columns memoria stores by attribute
// number are harmless; anything that would make the rollup silently wrong or
// failing raises an ERROR, which undoes the DDL.  Then the capture triggers
// are brought in line (triggers.cpp).  Also: the update script's repair, and
// the entry points of older SQL versions.
#include "citus.hpp"
#include "adopt.hpp"
#include "args.hpp"
#include "ddl_guard.hpp"
#include "dirty_log.hpp"
#include "expressions.hpp"
#include "guard.hpp"
#include "statements.hpp"
#include "triggers.hpp"
#include "view_source.hpp"

namespace memoria {

// source_problem: why memoria could not capture every change of the source
// table, or NULL.  Checked at creation and after every ALTER of the source.
char *source_problem(Oid source, const char **hint) {
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(source));
    if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for relation %u", source);
    Form_pg_class rel = (Form_pg_class) GETSTRUCT(tup);
    char *problem = NULL;
    if (rel->relpersistence == RELPERSISTENCE_TEMP) {
        problem = pstrdup("is a temporary table");
        *hint = "A rollup outlives the session; roll up a permanent table.";
    } else if (rel->relpersistence == RELPERSISTENCE_UNLOGGED) {
        problem = pstrdup("is unlogged (a crash empties it without any trigger firing)");
        *hint = "Make it a logged table: ALTER TABLE ... SET LOGGED.";
    } else if (rel->relrowsecurity && rel->relforcerowsecurity) {
        problem = pstrdup("forces row level security on its owner (a refresh would aggregate only the rows a policy shows)");
        *hint = "ALTER TABLE ... NO FORCE ROW LEVEL SECURITY: the owner then reads every row, and other roles still see "
                "only theirs.";
    } else if (rel->relkind == RELKIND_RELATION && find_inheritance_children(source, NoLock) != NIL) {
        problem = pstrdup("has inheritance children (writes to them fire no trigger of the parent's)");
        *hint = "Use declarative partitioning (PARTITION BY), whose partitions memoria captures.";
    }
    ReleaseSysCache(tup);
    return problem;
}

// column_problem: what is wrong with column `a` of rel for a rollup that
// needs type `type` (typmod `typmod`, or -2 for any) and collation `coll`
// (InvalidOid: any), or NULL.
static char *column_problem(Oid rel, AttrNumber a, const char *role, Oid type, int32 typmod, Oid coll) {
    HeapTuple tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(rel), Int16GetDatum(a));
    if (!HeapTupleIsValid(tup)) return psprintf("its %s no longer exists", role);
    Form_pg_attribute att = (Form_pg_attribute) GETSTRUCT(tup);
    char *problem = NULL;
    if (att->attisdropped)
        problem = psprintf("its %s would be dropped", role);
    else if (att->atttypid != type || (typmod != -2 && att->atttypmod != typmod))
        problem = psprintf("its %s \"%s\" would change type from %s to %s", role, NameStr(att->attname),
                           format_type_with_typemod(type, typmod == -2 ? -1 : typmod),
                           format_type_with_typemod(att->atttypid, att->atttypmod));
    else if (OidIsValid(coll) && att->attcollation != coll)
        problem = psprintf("its %s \"%s\" would change collation (which changes how its values group)", role,
                           NameStr(att->attname));
    else if (att->attgenerated != '\0' && strcmp(role, "dimension") != 0)
        problem = psprintf("its %s \"%s\" would become a generated column", role, NameStr(att->attname));
    ReleaseSysCache(tup);
    return problem;
}

// has_key: whether rel has a unique index on exactly these columns (the
// rollup table's key, which a refresh's upsert needs), treating NULLs as
// equal unless every one of them is NOT NULL.
static bool has_key(Oid rel, const AttrNumber *cols, int ncols) {
    bool found = false;
    Relation table = table_open(rel, AccessShareLock);
    bool all_not_null = true;
    for (int k = 0; k < ncols; k++)
        all_not_null = all_not_null && TupleDescAttr(RelationGetDescr(table), cols[k] - 1)->attnotnull;
    List *indexes = RelationGetIndexList(table);
    ListCell *lc;
    foreach (lc, indexes) {
        HeapTuple tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
        if (!HeapTupleIsValid(tup)) continue;
        Form_pg_index idx = (Form_pg_index) GETSTRUCT(tup);
        bool match = idx->indisunique && idx->indisvalid && idx->indnkeyatts == ncols &&
                     (all_not_null || idx->indnullsnotdistinct) &&
                     heap_attisnull(tup, Anum_pg_index_indpred, NULL) &&
                     heap_attisnull(tup, Anum_pg_index_indexprs, NULL);
        for (int k = 0; match && k < ncols; k++) {
            bool in = false;
            for (int j = 0; j < ncols; j++) in = in || idx->indkey.values[k] == cols[j];
            match = in;
        }
        ReleaseSysCache(tup);
        found = found || match;
    }
    table_close(table, AccessShareLock);
    return found;
}

// foreign_trigger: a trigger on rel other than memoria's (its guard, the
// capture triggers of a rollup of this rollup, a Citus partials shard's
// change log), or NULL.
static char *foreign_trigger(Oid rel) {
    Oid types[1] = {OIDOID};
    Datum values[1] = {ObjectIdGetDatum(rel)};
    MemoryContext caller = CurrentMemoryContext;
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("SELECT CASE WHEN t.tgisinternal THEN 'a foreign key' ELSE 'trigger ' || t.tgname END"
             " FROM pg_catalog.pg_trigger t WHERE t.tgrelid = $1"
             "  AND t.tgfoid <> 'memoria.capture()'::pg_catalog.regprocedure"
             "  AND t.tgfoid IS DISTINCT FROM pg_catalog.to_regprocedure('memoria_internal.guard_rollup()')"
             "  AND t.tgfoid IS DISTINCT FROM pg_catalog.to_regprocedure('memoria_internal.citus_partials_changed()')"
             " ORDER BY t.tgisinternal, 1 LIMIT 1",
             1, types, values, NULL, false);
    leave_catalog_session(cs);
    char *name = SPI_processed > 0 ? MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0],
                                                                               SPI_tuptable->tupdesc, 1))
                                   : NULL;
    SPI_finish();
    return name;
}

// target_problem: what about the rollup table no longer fits, or NULL.
// memoria writes it alone, so it must stay as memoria made it where that
// matters to its rows: its columns (bucket, dimensions, measures and no
// other; no NOT NULL, identity or generation memoria did not put there), its
// key, its persistence, no trigger, rule, CHECK, foreign key, forced row
// security or inheritance of anyone else's, its guard trigger, and its owner
// (the source's).  Indexes, comments, grants, statistics and storage
// options are the owner's.
static char *target_problem(const Rollup *r) {
    char *table = qualified_relation_name(r->target);
    int ncols = 1 + r->ndims + r->nmeasures;
    for (int k = 0; k < ncols; k++)
        if (r->target_attnums[k] == InvalidAttrNumber)
            return psprintf("its table %s would lose a column memoria writes", table);
    Relation rel = table_open(r->target, AccessShareLock);
    TupleDesc desc = RelationGetDescr(rel);
    Form_pg_class c = rel->rd_rel;
    char *problem = NULL;
    int live = 0;
    for (int a = 0; a < desc->natts; a++) {
        Form_pg_attribute att = TupleDescAttr(desc, a);
        if (att->attisdropped) continue;
        live++;
        if (problem == NULL && (att->attidentity != '\0' || att->attgenerated != '\0'))
            problem = psprintf("its table %s: column \"%s\" would be an identity or generated column", table,
                               NameStr(att->attname));
    }
    for (int k = 1; k < ncols && problem == NULL; k++) {
        // A measure may be NULL; a dimension may be, where the source's may.
        bool may_be_null = k > r->ndims || r->dim_attnums[k - 1] == 0 || !column_not_null(r->source, r->dim_attnums[k - 1]);
        Form_pg_attribute att = TupleDescAttr(desc, r->target_attnums[k] - 1);
        if (may_be_null && att->attnotnull)
            problem = psprintf("column \"%s\" of its table %s would be NOT NULL (%s)", NameStr(att->attname), table,
                               k > r->ndims ? "a measure may be NULL" : "the source's column may be NULL");
    }
    if (problem == NULL && live != ncols)
        problem = psprintf("its table %s would have a column memoria does not write", table);
    else if (problem == NULL && c->relpersistence != RELPERSISTENCE_PERMANENT)
        problem = psprintf("its table %s would not be logged (a crash would empty it without a word)", table);
    else if (problem == NULL && c->relhasrules)
        problem = psprintf("its table %s would have a rule", table);
    else if (problem == NULL && c->relchecks > 0)
        problem = psprintf("its table %s would have a CHECK constraint", table);
    else if (problem == NULL && c->relforcerowsecurity)
        problem = psprintf("its table %s would force row level security on its owner", table);
    else if (problem == NULL && (c->relispartition || c->relhassubclass ||
                                 has_superclass(r->target)))
        problem = psprintf("its table %s would join an inheritance or partition tree", table);
    Oid owner = c->relowner;
    table_close(rel, AccessShareLock);
    if (problem) return problem;
    if (get_atttype(r->target, r->target_attnums[0]) != r->time_type)
        return psprintf("its table's bucket column would change type");
    if (!has_key(r->target, r->target_attnums, 1 + r->ndims))
        return psprintf("its table %s would lose its key on (bucket, dimensions)", table);
    if (char *trigger = foreign_trigger(r->target))
        return psprintf("its table %s would have %s of its own", table, trigger);
    if (char *guard = guard_problem(r)) return psprintf("its table %s: %s", table, guard);
    if (owner != r->owner)
        return psprintf("its table %s would belong to another role than its source (it follows the source's owner)",
                        table);
    return NULL;
}

// view_problem: for a view source, what about the view or its tables no
// longer fits, or NULL: its shape, a table it would join that its owner does
// not own (memoria would put triggers on it), or that memoria cannot capture.
static char *view_problem(const Rollup *r) {
    if (get_rel_relkind(r->source) != RELKIND_VIEW) return NULL;
    Rollup copy = *r;
    char *problem;
    attach_view_join(&copy, &problem);
    if (problem) return psprintf("the source view %s", problem);
    ListCell *lc;
    foreach (lc, captured_tables(&copy)) {
        Oid rel = lfirst_oid(lc);
        const char *hint;
        HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
        if (!HeapTupleIsValid(tup)) continue;
        Oid owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
        ReleaseSysCache(tup);
        if (!has_privs_of_role(r->owner, owner))
            return psprintf("the source view would read table %s, which its owner does not own", qualified_relation_name(rel));
        if (char *p = source_problem(rel, &hint))
            return psprintf("table %s of the source view %s", qualified_relation_name(rel), p);
    }
    const ViewJoin *vj = copy.join;
    if (vj->ntables > 0 && (!OidIsValid(r->link_log) || vj->max_keys > link_log_keys(r->link_log)))
        return pstrdup("the source view would join other tables in a way its rollup was not made for");
    return NULL;
}

// rollup_problem: what about the source or the rollup table no longer fits
// the rollup, or NULL.
static char *rollup_problem(const Rollup *r) {
    const char *hint;
    char *problem = source_problem(r->source, &hint);
    if (problem) return psprintf("the source %s", problem);
    if (char *view = view_problem(r)) return view;
    problem = target_problem(r);
    if (problem) return problem;
    problem = column_problem(r->source, r->time_attnum, "time column", r->time_type, -2, InvalidOid);
    for (int i = 0; i < r->ndims && !problem; i++) {
        if (r->dim_attnums[i] == 0) continue;  // an expression: expressions_problem's
        Oid type;
        int32 typmod;
        Oid coll;
        get_atttypetypmodcoll(r->target, r->target_attnums[1 + i], &type, &typmod, &coll);
        problem = column_problem(r->source, r->dim_attnums[i], "dimension", type, typmod, coll);
    }
    if (!problem && r->updated_at_attnum != 0) {
        problem = column_problem(r->source, r->updated_at_attnum, "updated_at column", TIMESTAMPTZOID, -2,
                                 InvalidOid);
        if (!problem) {  // the column exists: column_problem found it
            HeapTuple tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(r->source), Int16GetDatum(r->updated_at_attnum));
            if (!((Form_pg_attribute) GETSTRUCT(tup))->attnotnull)
                problem = pstrdup("its updated_at column would allow NULL");
            ReleaseSysCache(tup);
        }
    }
    if (!problem) problem = expressions_problem(r);
    return problem;
}

// check_still_fits: ERROR (undoing the DDL) unless the rollup fits its source.
// (change: what the DDL did, for the message, e.g. "alter public.src".)
static void check_still_fits(const Rollup *r, const char *change) {
    char *problem = rollup_problem(r);
    if (problem)
        ereport(ERROR, (errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
                        errmsg("cannot %s: memoria rollup \"%s\" depends on it, and %s", change, r->name, problem),
                        errhint("Drop the rollup first with memoria.drop_rollup('%s'), then create it again "
                                "after the change.", r->name)));
}

// after_table_ddl: a CREATE or ALTER TABLE in the source's tree (or of one
// of its triggers): the rollup must still fit; then the capture triggers are
// brought in line (triggers.cpp), and a disabled one is reported (and the
// rollup rebuilt once it is back).
static void after_table_ddl(const Rollup *r, Oid changed) {
    follow_source_owner(r);  // ALTER TABLE ... OWNER TO
    check_still_fits(r, psprintf("alter %s", qualified_relation_name(changed)));
    reconcile_triggers(r, false);
    settle_capture(r, true);
}

// after_function_ddl: a function the rollup's expressions call was replaced
// or altered: it must still fit, and the rollup is rebuilt, since its rows
// were computed by the old definition.
static void after_function_ddl(const Rollup *r) {
    check_still_fits(r, "change the function");
    record_function_dependencies(r);
    mark_rebuild(r);
    ereport(NOTICE, (errmsg("memoria rollup \"%s\" uses the function changed: its next refresh rebuilds it",
                            r->name)));
}

// oids_of: column 1 of the last SPI result, as a List of Oids in `into`.
static List *oids_of(MemoryContext into) {
    List *out = NIL;
    for (uint64 i = 0; i < SPI_processed; i++) {
        bool isnull;
        Datum d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
        if (isnull) continue;
        MemoryContext old = MemoryContextSwitchTo(into);
        out = lappend_oid(out, DatumGetObjectId(d));
        MemoryContextSwitchTo(old);
    }
    return out;
}

// query_oids: a catalog query's first column as Oids.
static List *query_oids(const char *sql, int nargs, Oid *types, Datum *values) {
    MemoryContext caller = CurrentMemoryContext;
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    // Not read-only: the DDL's own catalog changes must be visible.
    spi_exec(sql, nargs, types, values, NULL, false);
    leave_catalog_session(cs);
    List *out = oids_of(caller);
    SPI_finish();
    return out;
}

// ddl_end_on_tables: rollups whose source is a table the command changed,
// or above or below it in an inheritance or partition tree.
static void ddl_end_on_tables(void) {
    List *tables = query_oids(
        "WITH RECURSIVE changed AS ("
        "  SELECT c.objid AS relid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
        "  WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
        "  UNION SELECT t.tgrelid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
        "  JOIN pg_catalog.pg_trigger t ON c.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND t.oid = c.objid"
        "  UNION SELECT w.ev_class FROM pg_catalog.pg_event_trigger_ddl_commands() c"
        "  JOIN pg_catalog.pg_rewrite w ON c.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND w.oid = c.objid"
        // A foreign key made on another table puts its triggers on the table it references.
        "  UNION SELECT k.confrelid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
        "  JOIN pg_catalog.pg_constraint k ON c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
        "   AND k.conrelid = c.objid AND k.contype = 'f'"
        "), up (relid) AS ("
        "  SELECT relid FROM changed"
        "  UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.relid"
        "), down (relid) AS ("
        "  SELECT relid FROM changed"
        "  UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN down ON i.inhparent = down.relid"
        ") SELECT relid FROM up UNION SELECT relid FROM down",
        0, NULL, NULL);
    citus_check_ddl(tables);
    // Views replaced (CREATE OR REPLACE VIEW): their rollups are rebuilt.
    List *replaced = query_oids("SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c "
                                "WHERE c.command_tag = 'CREATE VIEW'",
                                0, NULL, NULL);
    ListCell *lc;
    foreach (lc, all_rollups()) {
        Rollup *r = (Rollup *) lfirst(lc);
        if (r->restored) continue;  // settle_restored's, below
        Oid changed = list_member_oid(tables, r->source) ? r->source
                      : list_member_oid(tables, r->target) ? r->target
                                                           : InvalidOid;
        ListCell *lc2;
        foreach (lc2, captured_tables(r))
            if (!OidIsValid(changed) && list_member_oid(tables, lfirst_oid(lc2))) changed = lfirst_oid(lc2);
        if (!OidIsValid(changed)) continue;
        if (list_member_oid(replaced, r->source)) {
            // (r was read after the change: its new join decides the triggers.)
            // Writers in flight are not waited for here (one that also writes
            // a table whose capture must read the view would wait for this DDL
            // while it waits for them), though they may capture with the old
            // join's columns ...
            after_table_ddl(r, r->source);
            mark_rebuild(r);
            // ... so the rebuild waits until they have all ended.
            set_rebuild_after(r, (int64) U64FromFullTransactionId(ReadNextFullTransactionId()));
            // Other sessions' capture caches hold the old join's columns.
            ListCell *lc3;
            foreach (lc3, captured_tables(r)) CacheInvalidateRelcacheByRelid(lfirst_oid(lc3));
            ereport(NOTICE, (errmsg("memoria rollup \"%s\" reads the view replaced: its next refresh rebuilds it",
                                    r->name)));
            continue;
        }
        after_table_ddl(r, changed);
    }
}

// adopt_restored: rollups restored from a dump are adopted once their
// triggers and key are back (pg_restore makes them last); until then the
// hooks leave them alone, so as not to make triggers the dump will make.
// Tried at the end of a DDL statement and again at the start of the next
// CREATE or ALTER TABLE: pg_restore -j runs its last statements in
// parallel sessions, whose ends each miss what the other has not committed
// yet; a partition the application adds afterwards must not find its
// rollup still waiting (it would then wait for that partition's triggers
// forever).  Under the rollup's lock (as a refresh adopts), read again:
// the parallel sessions' ends see the same rollup ready, and two adoptions
// at once delete the same dependency rows ("tuple concurrently deleted").
// One that finds the lock taken leaves the rollup to its holder (or to the
// next statement or refresh).
static void adopt_restored(void) {
    ListCell *lc;
    foreach (lc, all_rollups()) {
        char *waiting;
        Rollup *r = (Rollup *) lfirst(lc);
        if (!r->restored || !restored_ready(r, &waiting) || !try_lock_rollup(r->id)) continue;
        Rollup *now = find_rollup_by_id(r->id);
        if (now != NULL && now->restored) (void) settle_restored(now, &waiting);
    }
}

// ddl_end_on_functions: rollups whose table depends on a function the
// command replaced or altered (as a view would).
static void ddl_end_on_functions(void) {
    List *targets = query_oids(
        "SELECT d.objid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_event_trigger_ddl_commands() c"
        "  ON c.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND c.objid = d.refobjid"
        " WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
        "   AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass",
        0, NULL, NULL);
    ListCell *lc;
    foreach (lc, all_rollups())
        if (list_member_oid(targets, ((Rollup *) lfirst(lc))->target)) after_function_ddl((Rollup *) lfirst(lc));
}

// check_trigger_alter: a capture trigger keeps its name (capture() finds its
// rollup by it).
static void check_trigger_alter(void) {
    List *altered = query_oids(
        "SELECT t.oid FROM pg_catalog.pg_event_trigger_ddl_commands() c JOIN pg_catalog.pg_trigger t ON t.oid = c.objid"
        " WHERE c.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass"
        "   AND (t.tgfoid = 'memoria.capture()'::pg_catalog.regprocedure"
        "        OR t.tgfoid = pg_catalog.to_regprocedure('memoria_internal.guard_rollup()'))",
        0, NULL, NULL);
    if (altered != NIL)
        ereport(ERROR, (errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
                        errmsg("cannot alter a trigger of a memoria rollup"),
                        errhint("memoria finds a trigger's rollup by its name; leave its triggers as they are.")));
}

// Dropped: what one sql_drop event dropped that memoria cares about.
struct Dropped {
    List *relations;      // tables (and others in pg_class) dropped
    List *triggers;       // the table of each trigger dropped by name ...
    List *trigger_names;  // ... and the trigger's name
};

static Dropped dropped_objects(void) {
    Dropped d = {NIL, NIL, NIL};
    MemoryContext caller = CurrentMemoryContext;
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("SELECT d.objid, d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid = 0, "
             "       d.object_type = 'trigger' AND d.original, d.address_names[3], "
             "       pg_catalog.to_regclass(pg_catalog.quote_ident(d.address_names[1]) || '.' || "
             "                              pg_catalog.quote_ident(d.address_names[2])) "
             "FROM pg_catalog.pg_event_trigger_dropped_objects() d",
             0, NULL, NULL, NULL, false);
    leave_catalog_session(cs);
    MemoryContext old = MemoryContextSwitchTo(caller);
    for (uint64 i = 0; i < SPI_processed; i++) {
        HeapTuple row = SPI_tuptable->vals[i];
        TupleDesc desc = SPI_tuptable->tupdesc;
        bool isnull, rel_null, trig_null;
        Oid objid = DatumGetObjectId(SPI_getbinval(row, desc, 1, &isnull));
        bool is_relation = DatumGetBool(SPI_getbinval(row, desc, 2, &rel_null));
        bool is_trigger = DatumGetBool(SPI_getbinval(row, desc, 3, &trig_null));
        if (!rel_null && is_relation) d.relations = lappend_oid(d.relations, objid);
        if (trig_null || !is_trigger) continue;
        Datum table = SPI_getbinval(row, desc, 5, &isnull);
        if (isnull) continue;
        d.triggers = lappend_oid(d.triggers, DatumGetObjectId(table));
        d.trigger_names = lappend(d.trigger_names, SPI_getvalue(row, desc, 4));
    }
    MemoryContextSwitchTo(old);
    SPI_finish();
    return d;
}

// after_drop: one rollup after a sql_drop event.
static void after_drop(const Rollup *r, const Dropped &d) {
    List *tree = remembered_capture_tables(r);
    // A capture trigger of a rollup that stays goes only by memoria's hand
    // (drop_rollup, or a layout change): dropped by anyone else, writes
    // would silently stop being captured.  Its table tells memoria's
    // triggers from others named alike.
    ListCell *t, *n;
    forboth (t, d.triggers, n, d.trigger_names) {
        TriggerKind kind;
        int32 id;
        if (parse_trigger_name((const char *) lfirst(n), &kind, &id) && id == r->id &&
            (kind == TriggerKind::Guard ? lfirst_oid(t) == r->target : list_member_oid(tree, lfirst_oid(t))))
            ereport(ERROR, (errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
                            errmsg("cannot drop a trigger of a memoria rollup"),
                            errhint("Drop the rollup with memoria.drop_rollup(), which removes its triggers.")));
    }
    if (list_member_oid(d.relations, r->source) || list_member_oid(d.relations, r->target) ||
        list_member_oid(d.relations, r->dirty_log) || (OidIsValid(r->link_log) && list_member_oid(d.relations, r->link_log))) {
        delete_rollup(r->id);  // its log and triggers went with its tables
        return;
    }
    // A dropped partition took its rows along without a row trigger firing.
    ListCell *lc;
    foreach (lc, d.relations)
        if (list_member_oid(tree, lfirst_oid(lc))) {
            mark_rebuild(r);
            return;
        }
}

}  // namespace memoria

using namespace memoria;

// memoria._on_ddl_end(): the ddl_command_end event trigger.
MEMORIA_FUNCTION(memoria_on_ddl_end) {
    if (!CALLED_AS_EVENT_TRIGGER(fcinfo)) elog(ERROR, "memoria._on_ddl_end() must be called as an event trigger");
    if (in_own_ddl()) PG_RETURN_VOID();  // memoria's own trigger DDL, in the middle of its work
    const char *tag = GetCommandTagName(((EventTriggerData *) fcinfo->context)->tag);
    adopt_restored();
    if (strcmp(tag, "ALTER TRIGGER") == 0)
        check_trigger_alter();
    else if (strcmp(tag, "CREATE FUNCTION") == 0 || strcmp(tag, "ALTER FUNCTION") == 0)
        ddl_end_on_functions();
    else  // CREATE TABLE, ALTER TABLE, CREATE TRIGGER, CREATE RULE
        ddl_end_on_tables();
    live_views_after_ddl();  // the rollups still fit: their _live views come back
    PG_RETURN_VOID();
}

// before_drop_extension: DROP EXTENSION.  Only memoria's, with CASCADE,
// by its owner (anyone else's fails with PostgreSQL's own error, having
// changed nothing), and not with Citus itself (whose own drop then takes
// the shards along): its distributed rollups go first.
static void before_drop_extension(DropStmt *drop) {
    if (drop->behavior != DROP_CASCADE) return;
    bool memoria = false, citus = false;
    ListCell *lc;
    foreach (lc, drop->objects) {
        memoria = memoria || strcmp(strVal(lfirst(lc)), "memoria") == 0;
        citus = citus || strcmp(strVal(lfirst(lc)), "citus") == 0;
    }
    Oid ext = get_extension_oid("memoria", true);
    if (!memoria || citus || !OidIsValid(ext) || !pg_extension_ownercheck(ext, GetUserId())) return;
    citus_drop_before_extension();
}

// memoria_internal.on_ddl_start(): the ddl_command_start event trigger
// (CREATE TABLE, ALTER TABLE): restored rollups are adopted if they can be;
// _live views that would stand in the way step aside.  (DROP EXTENSION:
// before_drop_extension.)
MEMORIA_FUNCTION(memoria_on_ddl_start) {
    if (!CALLED_AS_EVENT_TRIGGER(fcinfo)) elog(ERROR, "memoria_internal.on_ddl_start() must be called as an event trigger");
    if (in_own_ddl()) PG_RETURN_VOID();
    int nest = NewGUCNestLevel();  // (as on_ddl_end's SET search_path)
    (void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                             false);
    Node *parsetree = ((EventTriggerData *) fcinfo->context)->parsetree;
    if (IsA(parsetree, DropStmt)) {
        before_drop_extension((DropStmt *) parsetree);
        AtEOXact_GUC(true, nest);
        PG_RETURN_VOID();
    }
    adopt_restored();
    AtEOXact_GUC(true, nest);
    live_views_before_ddl(parsetree);
    stale_triggers_before_ddl(parsetree);
    PG_RETURN_VOID();
}

// memoria._on_sql_drop(): the sql_drop event trigger.
MEMORIA_FUNCTION(memoria_on_sql_drop) {
    if (!CALLED_AS_EVENT_TRIGGER(fcinfo)) elog(ERROR, "memoria._on_sql_drop() must be called as an event trigger");
    if (in_own_ddl()) PG_RETURN_VOID();  // memoria dropping one of its triggers
    Dropped d = dropped_objects();
    citus_check_drop(d.relations);
    ListCell *lc;
    foreach (lc, all_rollups()) after_drop((const Rollup *) lfirst(lc), d);
    PG_RETURN_VOID();
}

// memoria._on_table_rewrite(): the table_rewrite event trigger.  A rewrite
// (ALTER COLUMN TYPE ... USING ...) changes rows without firing row
// triggers: rollups of the table, or of a table above it, are rebuilt.
MEMORIA_FUNCTION(memoria_on_table_rewrite) {
    if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
        elog(ERROR, "memoria._on_table_rewrite() must be called as an event trigger");
    List *tables = query_oids("SELECT pg_catalog.pg_event_trigger_table_rewrite_oid() "
                              "UNION SELECT relid FROM pg_catalog.pg_partition_ancestors("
                              "  pg_catalog.pg_event_trigger_table_rewrite_oid())",
                              0, NULL, NULL);
    ListCell *lc;
    foreach (lc, all_rollups()) {
        Rollup *r = (Rollup *) lfirst(lc);
        bool mine = list_member_oid(tables, r->source);
        ListCell *lc2;
        foreach (lc2, captured_tables(r)) mine = mine || list_member_oid(tables, lfirst_oid(lc2));
        if (mine) mark_rebuild(r);
    }
    PG_RETURN_VOID();
}

// memoria._capture_problem(rollup_id): why the rollup's capture cannot be
// trusted now, or NULL (also for a rollup the caller may not see).
MEMORIA_FUNCTION(memoria_capture_problem) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL || !can_observe(r->owner) || get_rel_name(r->source) == NULL) PG_RETURN_NULL();
    char *problem = capture_problem(r);
    if (problem == NULL) PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(problem));
}

// memoria._repair(rollup_id): the update script's repair of a rollup made by
// an older version: a fresh dirty log owned by the extension (the old one
// belonged to the rollup's owner, who may have left anything on it), the
// triggers of this version's layout, its function dependencies.
MEMORIA_FUNCTION(memoria_repair) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL) PG_RETURN_VOID();
    renew_dirty_log(r);
    // A rollup table without a primary key (a nullable dimension) needs a
    // replica identity under a FOR ALL TABLES publication.
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    Oid types[1] = {OIDOID};
    Datum values[1] = {ObjectIdGetDatum(r->target)};
    spi_exec("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1 AND indisprimary)", 1, types,
             values, NULL, true);
    if (!spi_bool(1))
        spi_exec(psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", qualified_relation_name(r->target)), 0, NULL,
                 NULL, NULL, false);
    leave_catalog_session(cs);
    SPI_finish();
    CommandCounterIncrement();
    reconcile_triggers(r, true);
    record_function_dependencies(r);
    // DROP EXTENSION refuses while rollups exist (create.cpp): the rollup
    // table's dependency on the extension is a plain one now.
    deleteDependencyRecordsForClass(RelationRelationId, r->target, ExtensionRelationId, DEPENDENCY_AUTO);
    record_dependency(RelationRelationId, r->target, ExtensionRelationId, get_extension_oid("memoria", false),
                      DEPENDENCY_NORMAL);
    // Other backends' capture caches name the old log.
    CacheInvalidateRelcacheByRelid(r->source);
    PG_RETURN_VOID();
}

// ---------------------------------------------------------------------------
// Entry points of older SQL versions (the library serves them until ALTER
// EXTENSION UPDATE): 0.2.0's ALTER guard and partition hook.
// ---------------------------------------------------------------------------

MEMORIA_FUNCTION(memoria_check_rollup) {
    if (PG_ARGISNULL(0)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "name must not be NULL", NULL);
    Rollup *r = load_rollup(text_to_cstring(PG_GETARG_TEXT_PP(0)));
    check_still_fits(r, psprintf("alter %s", qualified_relation_name(r->source)));
    PG_RETURN_VOID();
}

MEMORIA_FUNCTION(memoria_adopt_trigger) {
    record_dependency(TriggerRelationId, PG_GETARG_OID(0), RelationRelationId, PG_GETARG_OID(1), DEPENDENCY_AUTO);
    record_dependency(TriggerRelationId, PG_GETARG_OID(0), ExtensionRelationId, get_extension_oid("memoria", false),
                      DEPENDENCY_AUTO);
    PG_RETURN_VOID();
}

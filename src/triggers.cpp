// triggers.cpp: memoria's capture triggers.
//
// A rollup's triggers all call memoria.capture(), take no arguments and are
// named zz_memoria_<kind>_<rollup id>:
//   capture   AFTER ... FOR EACH ROW on the source: UPDATE OR DELETE, and
//             INSERT when inserts are captured row by row (below).  AFTER, so
//             it sees the row as stored: after every BEFORE trigger, whatever
//             its name, and with stored generated columns computed.
//             PostgreSQL clones it to every partition, present and future.
//             Fires ALWAYS.
//   insert    AFTER INSERT FOR EACH STATEMENT with a NEW TABLE, on a plain
//             source in trigger mode: one call per statement, and COPY keeps
//             its batched inserts.  Fires in origin and local sessions.
//   replica   AFTER INSERT FOR EACH ROW beside it, firing only under
//             session_replication_role = replica: bulk loaders, and logical
//             replication's apply worker, which fires no statement trigger.
//   truncate  BEFORE TRUNCATE FOR EACH STATEMENT on the source and on every
//             partition (statement triggers are not cloned).  Fires ALWAYS.
//   stale     updated_at mode: AFTER INSERT FOR EACH ROW WHEN
//             (NEW.updated_at < now()), a row stamped before its transaction
//             began, which a refresh may already have scanned past: one an
//             UPDATE moved to another partition (a delete and an insert
//             underneath, no UPDATE trigger), one logical replication
//             brought with the publisher's stamp, one copied with its old
//             stamp.  Its key is logged.  A row stamped in its own
//             transaction queues no trigger call at all.  Fires ALWAYS.
// Inserts are captured row by row when the source is partitioned or is a
// partition itself: an insert routed through a parent fires the partition's
// row triggers but no statement trigger.
//
// The *layout* (which triggers, of which type, firing when) follows from the
// rollup and from what its source is now, so reconcile_triggers() runs at
// creation, after every DDL on the source's tree (a source that becomes a
// partition, a new or detached partition, ENABLE/DISABLE TRIGGER) and in the
// update script.  capture() trusts no argument: it finds the rollup by the
// trigger's name in memoria's catalog and checks the trigger's table is that
// rollup's source or one of its partitions (capture.cpp).
#include <initializer_list>
#include <utility>

#include "dirty_log.hpp"
#include "guard.hpp"
#include "triggers.hpp"
#include "view_source.hpp"

namespace memoria {

static const char *const KIND_NAMES[] = {"capture", "insert", "replica", "truncate", "guard", "stale"};
static const char *const TRIGGER_PREFIX = "zz_memoria_";

char *trigger_name(TriggerKind kind, int32 id) {
    return psprintf("%s%s_%d", TRIGGER_PREFIX, KIND_NAMES[(int) kind], id);
}

bool parse_trigger_name(const char *name, TriggerKind *kind, int32 *id) {
    size_t plen = strlen(TRIGGER_PREFIX);
    if (strncmp(name, TRIGGER_PREFIX, plen) != 0) return false;
    for (int k = 0; k < (int) lengthof(KIND_NAMES); k++) {
        size_t klen = strlen(KIND_NAMES[k]);
        const char *rest = name + plen;
        if (strncmp(rest, KIND_NAMES[k], klen) != 0 || rest[klen] != '_') continue;
        const char *digits = rest + klen + 1;
        if (*digits == '\0' || strspn(digits, "0123456789") != strlen(digits) || strlen(digits) > 9) return false;
        *kind = (TriggerKind) k;
        *id = (int32) strtol(digits, NULL, 10);
        return true;
    }
    return false;
}

// TriggerSpec: one trigger of the layout.
struct TriggerSpec {
    Oid table;        // the fact table (the source, for a table source), or a table a view joins to it
    TriggerKind kind;
    int16 tgtype;     // pg_trigger.tgtype
    char fires;       // pg_trigger.tgenabled: 'A' always, 'O' origin/local, 'R' replica
    bool on_partitions;  // also on every partition (created by memoria, not cloned)
};

// The most triggers a layout has: four on the fact table, two on each
// table a view joins to it.
static int max_layout(const Rollup *r) { return 4 + 2 * (r->join ? r->join->ntables : 0); }

// layout: the triggers the rollup needs now (at most max_layout); returns
// how many.  The fact table's row trigger comes first.  The tables a view
// joins to its fact table have a row trigger for every write (their keys
// are few) and a TRUNCATE trigger.
static int layout(const Rollup *r, TriggerSpec *out) {
    bool trigger_mode = r->updated_at_attnum == 0;
    bool row_inserts = trigger_mode && (get_rel_relkind(r->fact) == RELKIND_PARTITIONED_TABLE ||
                                        get_rel_relispartition(r->fact));
    int n = 0;
    int16 row = TRIGGER_TYPE_ROW | TRIGGER_TYPE_AFTER | TRIGGER_TYPE_UPDATE | TRIGGER_TYPE_DELETE;
    int16 truncate = TRIGGER_TYPE_STATEMENT | TRIGGER_TYPE_BEFORE | TRIGGER_TYPE_TRUNCATE;
    out[n++] = {r->fact, TriggerKind::Capture, (int16) (row | (row_inserts ? TRIGGER_TYPE_INSERT : 0)),
                TRIGGER_FIRES_ALWAYS, false};
    if (trigger_mode && !row_inserts) {
        out[n++] = {r->fact, TriggerKind::Insert, TRIGGER_TYPE_STATEMENT | TRIGGER_TYPE_AFTER | TRIGGER_TYPE_INSERT,
                    TRIGGER_FIRES_ON_ORIGIN, false};
        out[n++] = {r->fact, TriggerKind::Replica, TRIGGER_TYPE_ROW | TRIGGER_TYPE_AFTER | TRIGGER_TYPE_INSERT,
                    TRIGGER_FIRES_ON_REPLICA, false};
    }
    if (!trigger_mode)
        out[n++] = {r->fact, TriggerKind::Stale, TRIGGER_TYPE_ROW | TRIGGER_TYPE_AFTER | TRIGGER_TYPE_INSERT,
                    TRIGGER_FIRES_ALWAYS, false};
    out[n++] = {r->fact, TriggerKind::Truncate, truncate, TRIGGER_FIRES_ALWAYS, true};
    for (int t = 0; r->join && t < r->join->ntables; t++) {
        Oid rel = r->join->tables[t].rel;
        out[n++] = {rel, TriggerKind::Capture, (int16) (row | TRIGGER_TYPE_INSERT), TRIGGER_FIRES_ALWAYS, false};
        out[n++] = {rel, TriggerKind::Truncate, truncate, TRIGGER_FIRES_ALWAYS, true};
    }
    return n;
}

// Existing: one memoria trigger of the rollup found in pg_trigger.
struct Existing {
    Oid oid;
    Oid relid;
    TriggerKind kind;
    int16 tgtype;
    char enabled;
    bool cloned;  // tgparentid set: PostgreSQL's copy on a partition
    bool matched;
    const char *def;  // pg_get_triggerdef()
};

// existing_triggers: the rollup's triggers; returns how many.  Only
// triggers calling memoria.capture() on the tables of the source's tree, now
// or as memoria last saw it (a partition that left): anyone can name a
// trigger of theirs like one of memoria's, on a table of theirs.
static int existing_triggers(const Rollup *r, Existing **out) {
    Datum names[5];
    int k = 0;
    for (TriggerKind kind : {TriggerKind::Capture, TriggerKind::Insert, TriggerKind::Replica, TriggerKind::Truncate,
                             TriggerKind::Stale})
        names[k++] = CStringGetTextDatum(trigger_name(kind, r->id));
    List *tables = list_concat_unique_oid(captured_tables(r), remembered_capture_tables(r));
    Oid types[2] = {TEXTARRAYOID, OIDARRAYOID};
    Datum values[2] = {PointerGetDatum(construct_array(names, k, TEXTOID, -1, false, TYPALIGN_INT)),
                       oid_array_datum(tables)};
    MemoryContext caller = CurrentMemoryContext;
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("SELECT t.oid, t.tgrelid, t.tgname::text, t.tgtype, t.tgenabled, t.tgparentid <> 0, "
             "       pg_catalog.pg_get_triggerdef(t.oid) "
             "FROM pg_catalog.pg_trigger t "
             "WHERE t.tgname = ANY ($1::name[]) AND t.tgfoid = 'memoria.capture()'::pg_catalog.regprocedure "
             "  AND t.tgrelid = ANY ($2) "
             "ORDER BY t.oid",
             2, types, values, NULL, false);  // a fresh snapshot: triggers made just now
    leave_catalog_session(cs);
    int n = (int) SPI_processed;
    Existing *e = (Existing *) MemoryContextAlloc(caller, (n + 1) * sizeof(Existing));
    for (int i = 0; i < n; i++) {
        HeapTuple row = SPI_tuptable->vals[i];
        TupleDesc desc = SPI_tuptable->tupdesc;
        bool isnull;
        int32 id;
        e[i].oid = DatumGetObjectId(SPI_getbinval(row, desc, 1, &isnull));
        e[i].relid = DatumGetObjectId(SPI_getbinval(row, desc, 2, &isnull));
        parse_trigger_name(TextDatumGetCString(SPI_getbinval(row, desc, 3, &isnull)), &e[i].kind, &id);
        e[i].tgtype = DatumGetInt16(SPI_getbinval(row, desc, 4, &isnull));
        e[i].enabled = DatumGetChar(SPI_getbinval(row, desc, 5, &isnull));
        e[i].cloned = DatumGetBool(SPI_getbinval(row, desc, 6, &isnull));
        e[i].matched = false;
        e[i].def = MemoryContextStrdup(caller, TextDatumGetCString(SPI_getbinval(row, desc, 7, &isnull)));
    }
    SPI_finish();
    *out = e;
    return n;
}

// when_clause: the WHEN clause memoria gives a trigger of this kind, as
// pg_get_triggerdef() shows it under the catalog session's search_path, or
// NULL for none.
static char *when_clause(const Rollup *r, TriggerKind kind) {
    if (kind != TriggerKind::Stale) return NULL;
    return psprintf("WHEN ((new.%s < now()))", quote_identifier(get_attname(r->fact, r->updated_at_attnum, false)));
}

// trigger_definition: a trigger of memoria's of this kind and type on rel,
// as create_trigger() makes it and pg_get_triggerdef() shows it.
static char *trigger_definition(const Rollup *r, TriggerKind kind, int16 t, Oid rel) {
    StringInfoData def;
    initStringInfo(&def);
    appendStringInfo(&def, "CREATE TRIGGER %s %s", quote_identifier(trigger_name(kind, r->id)),
                     TRIGGER_FOR_BEFORE(t) ? "BEFORE" : "AFTER");
    const char *sep = " ";
    for (auto [bit, event] : {std::pair<int16, const char *>{TRIGGER_TYPE_INSERT, "INSERT"},
                              {TRIGGER_TYPE_DELETE, "DELETE"}, {TRIGGER_TYPE_UPDATE, "UPDATE"},
                              {TRIGGER_TYPE_TRUNCATE, "TRUNCATE"}})
        if (t & bit) {
            appendStringInfo(&def, "%s%s", sep, event);
            sep = " OR ";
        }
    appendStringInfo(&def, " ON %s %sFOR EACH %s ", qualified_relation_name(rel),
                     kind == TriggerKind::Insert ? "REFERENCING NEW TABLE AS memoria_inserted " : "",
                     TRIGGER_FOR_ROW(t) ? "ROW" : "STATEMENT");
    char *when = when_clause(r, kind);
    if (when != NULL) appendStringInfo(&def, "%s ", when);
    appendStringInfoString(&def, "EXECUTE FUNCTION memoria.capture()");
    return def.data;
}

// as_made: the trigger is what memoria made, whole (its table's owner may
// CREATE OR REPLACE it with a WHEN clause, a column list, other arguments
// or transition tables of their own).  Its type is checked on its own.
static bool as_made(const Rollup *r, const Existing &e) {
    return strcmp(e.def, trigger_definition(r, e.kind, e.tgtype, e.relid)) == 0;
}

static Existing *find_existing(Existing *e, int n, TriggerKind kind, Oid relid) {
    for (int i = 0; i < n; i++)
        if (e[i].kind == kind && e[i].relid == relid) return &e[i];
    return NULL;
}

// relations_of: the tables a spec's trigger belongs on.
static List *relations_of(const TriggerSpec &spec) {
    return spec.on_partitions ? find_all_inheritors(spec.table, NoLock, NULL) : list_make1_oid(spec.table);
}

static const char *fires_sql(char fires) {
    return fires == TRIGGER_FIRES_ALWAYS ? "ALWAYS " : fires == TRIGGER_FIRES_ON_REPLICA ? "REPLICA " : "";
}

// Whether memoria itself is changing a trigger (the sql_drop hook lets only
// memoria drop a trigger of a rollup that still exists).
static bool running_own_ddl = false;

bool in_own_ddl(void) { return running_own_ddl; }

void run_own_ddl(const char *sql, Oid as_role) {
    SPI_connect();
    CatalogSession cs = enter_catalog_session_as(OidIsValid(as_role) ? as_role : extension_owner());
    running_own_ddl = true;
    PG_TRY();
    { spi_exec(sql, 0, NULL, NULL, NULL, false); }
    PG_FINALLY();
    { running_own_ddl = false; }
    PG_END_TRY();
    leave_catalog_session(cs);
    SPI_finish();
    CommandCounterIncrement();
}

void run_rollup_ddl(const Rollup *r, const char *sql) {
    SPI_connect();
    RollupSession rs = enter_rollup_session(r);
    running_own_ddl = true;
    PG_TRY();
    { spi_exec(sql, 0, NULL, NULL, NULL, false); }
    PG_FINALLY();
    { running_own_ddl = false; }
    PG_END_TRY();
    leave_rollup_session(rs);
    SPI_finish();
    CommandCounterIncrement();
}

// record_owned_trigger: the trigger goes with the rollup table, and with the
// extension.
static void record_owned_trigger(const Rollup *r, Oid trigger) {
    Oid ext = get_extension_oid("memoria", false);
    deleteDependencyRecordsForSpecific(TriggerRelationId, trigger, DEPENDENCY_AUTO, RelationRelationId, r->target);
    deleteDependencyRecordsForSpecific(TriggerRelationId, trigger, DEPENDENCY_AUTO, ExtensionRelationId, ext);
    record_dependency(TriggerRelationId, trigger, RelationRelationId, r->target, DEPENDENCY_AUTO);
    record_dependency(TriggerRelationId, trigger, ExtensionRelationId, ext, DEPENDENCY_AUTO);
}

static void create_trigger(const Rollup *r, const TriggerSpec &spec, Oid rel) {
    char *name = trigger_name(spec.kind, r->id);
    run_own_ddl(trigger_definition(r, spec.kind, spec.tgtype, rel));
    if (spec.fires != TRIGGER_FIRES_ON_ORIGIN)
        run_own_ddl(psprintf("ALTER TABLE %s ENABLE %sTRIGGER %s", qualified_relation_name(rel), fires_sql(spec.fires),
                         quote_identifier(name)));
    record_owned_trigger(r, get_trigger_oid(rel, name, false));
}

static void drop_trigger(const Rollup *r, const Existing &e) {
    run_own_ddl(psprintf("DROP TRIGGER %s ON %s", quote_identifier(trigger_name(e.kind, r->id)),
                     qualified_relation_name(e.relid)));
}

// joined_unseen: a table joined the captured tables or left them, with rows
// no trigger saw: a fact partition's keys are dirty; for any other table of a
// view, the whole rollup.
static void joined_unseen(const Rollup *r, Oid rel) {
    if (r->join == NULL || list_member_oid(find_all_inheritors(r->fact, NoLock, NULL), rel))
        mark_all_keys_dirty(r, rel);
    else
        mark_rebuild(r);
}

void stale_triggers_before_ddl(Node *parsetree) {
    if (parsetree == NULL || !IsA(parsetree, AlterTableStmt)) return;
    AlterTableStmt *stmt = (AlterTableStmt *) parsetree;
    if (stmt->relation == NULL) return;
    List *columns = NIL;  // names whose type changes
    ListCell *lc;
    foreach (lc, stmt->cmds) {
        AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);
        if (cmd->subtype == AT_AlterColumnType && cmd->name != NULL) columns = lappend(columns, cmd->name);
    }
    if (columns == NIL) return;
    Oid rel = RangeVarGetRelid(stmt->relation, NoLock, true);
    // Only for the table's owner: anyone else's ALTER fails anyway.
    if (!OidIsValid(rel) || !pg_class_ownercheck(rel, GetUserId())) return;
    List *tables = find_all_inheritors(rel, NoLock, NULL);  // (a source may be a partition of rel)
    foreach (lc, all_rollups()) {
        const Rollup *r = (const Rollup *) lfirst(lc);
        if (r->updated_at_attnum == 0 || !list_member_oid(tables, r->fact)) continue;
        const char *stamp = get_attname(r->fact, r->updated_at_attnum, false);
        bool changes = false;
        ListCell *c;
        foreach (c, columns) changes = changes || strcmp((const char *) lfirst(c), stamp) == 0;
        if (!changes) continue;
        Existing *e;
        int n = existing_triggers(r, &e);
        Existing *stale = find_existing(e, n, TriggerKind::Stale, r->fact);
        if (stale == NULL) continue;
        drop_trigger(r, *stale);
        // What the command itself writes meanwhile (a CHECK constraint's
        // function, say) no trigger sees: the rollup is rebuilt.
        mark_rebuild(r);
    }
}

void reconcile_triggers(const Rollup *r, bool initial) {
    if (!OidIsValid(r->fact)) return;  // a view that no longer fits: the DDL hooks refuse that
    TriggerSpec *specs = (TriggerSpec *) palloc(max_layout(r) * sizeof(TriggerSpec));
    int nspecs = layout(r, specs);
    Existing *e;
    int n = existing_triggers(r, &e);
    List *tree = captured_tables(r);
    // Clones follow their parent trigger; only their mode is memoria's to keep.
    for (int i = 0; i < n; i++) e[i].matched = e[i].cloned && list_member_oid(tree, e[i].relid);
    for (int s = 0; s < nspecs; s++) {
        ListCell *lc;
        foreach (lc, relations_of(specs[s])) {
            Oid rel = lfirst_oid(lc);
            Existing *have = find_existing(e, n, specs[s].kind, rel);
            if (have != NULL && (have->tgtype != specs[s].tgtype || !as_made(r, *have))) {
                // The layout changed (e.g. the source became a partition), or
                // someone replaced the trigger.
                drop_trigger(r, *have);
                have->matched = true;
                have = NULL;
            }
            if (have == NULL) {
                create_trigger(r, specs[s], rel);
                // A partition that joined brought rows no trigger saw; so
                // did a table a replaced view joins.
                if (!initial && rel != specs[s].table) joined_unseen(r, rel);
                else if (!initial && rel != r->fact && specs[s].kind == TriggerKind::Capture) mark_rebuild(r);
                continue;
            }
            have->matched = true;
            if (have->enabled != specs[s].fires && have->enabled != TRIGGER_DISABLED)
                run_own_ddl(psprintf("ALTER TABLE %s ENABLE %sTRIGGER %s", qualified_relation_name(rel),
                                 fires_sql(specs[s].fires), quote_identifier(trigger_name(specs[s].kind, r->id))));
        }
    }
    for (int i = 0; i < n; i++) {
        if (e[i].cloned && e[i].matched && e[i].enabled != TRIGGER_FIRES_ALWAYS &&
            e[i].enabled != TRIGGER_DISABLED)
            run_own_ddl(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER %s", qualified_relation_name(e[i].relid),
                             quote_identifier(trigger_name(e[i].kind, r->id))));
        if (e[i].matched || e[i].cloned) continue;
        // A partition that left the source took its rows along.
        if (e[i].kind == TriggerKind::Truncate && !initial && !list_member_oid(tree, e[i].relid))
            joined_unseen(r, e[i].relid);
        drop_trigger(r, e[i]);
    }
    // The sql_drop hook needs them: afterwards, no catalog says what a
    // dropped table was.
    remember_capture_tables(r, tree);
}

// capture_problem judges what the triggers in place capture, not whether they
// are the current layout: a source detached from its parent keeps a row
// trigger for INSERT (slower than the statement trigger, but complete) until
// the next DDL on it reconciles the layout.
char *capture_problem(const Rollup *r) {
    if (!OidIsValid(r->fact)) return pstrdup("its source view no longer has a shape memoria follows");
    TriggerSpec *specs = (TriggerSpec *) palloc(max_layout(r) * sizeof(TriggerSpec));
    int nspecs = layout(r, specs);
    const TriggerSpec &row = specs[0];
    Existing *e;
    int n = existing_triggers(r, &e);
    char *src = qualified_relation_name(r->fact);
    const char *row_name = trigger_name(TriggerKind::Capture, r->id);
    Existing *have = find_existing(e, n, TriggerKind::Capture, r->fact);
    if (have == NULL) return psprintf("trigger %s is missing on %s", row_name, src);
    if (have->enabled == TRIGGER_DISABLED) return psprintf("trigger %s on %s is disabled", row_name, src);
    if (have->enabled != TRIGGER_FIRES_ALWAYS)
        return psprintf("trigger %s on %s does not fire in every session", row_name, src);
    // (A BEFORE row trigger, as made before 0.3.0, captures too.)
    int16 needed = TRIGGER_TYPE_ROW | TRIGGER_TYPE_UPDATE | TRIGGER_TYPE_DELETE | (row.tgtype & TRIGGER_TYPE_INSERT);
    if ((have->tgtype & needed) != needed || !as_made(r, *have))
        return psprintf("trigger %s on %s does not capture what the rollup needs", row_name, src);
    // Inserts: by the row trigger, or by the statement trigger in origin and
    // local sessions plus the row trigger for replica ones.
    if (r->updated_at_attnum == 0 && !TRIGGER_FOR_INSERT(have->tgtype)) {
        for (TriggerKind k : {TriggerKind::Insert, TriggerKind::Replica}) {
            Existing *t = find_existing(e, n, k, r->fact);
            const char *name = trigger_name(k, r->id);
            if (t == NULL) return psprintf("trigger %s is missing on %s", name, src);
            if (t->enabled == TRIGGER_DISABLED) return psprintf("trigger %s on %s is disabled", name, src);
            if (!as_made(r, *t)) return psprintf("trigger %s on %s does not capture what the rollup needs", name, src);
        }
    }
    // Row triggers (with their clones) and TRUNCATE triggers on every table
    // of every captured tree.
    for (int s = 0; s < nspecs; s++) {
        if (specs[s].kind != TriggerKind::Capture && specs[s].kind != TriggerKind::Truncate &&
            specs[s].kind != TriggerKind::Stale)
            continue;
        ListCell *lc;
        foreach (lc, find_all_inheritors(specs[s].table, NoLock, NULL)) {
            Oid rel = lfirst_oid(lc);
            Existing *t = find_existing(e, n, specs[s].kind, rel);
            const char *name = trigger_name(specs[s].kind, r->id);
            if (t == NULL) return psprintf("trigger %s is missing on %s", name, qualified_relation_name(rel));
            if (t->enabled == TRIGGER_DISABLED)
                return psprintf("trigger %s on %s is disabled", name, qualified_relation_name(rel));
            if (!as_made(r, *t) ||
                (specs[s].kind == TriggerKind::Capture && rel == specs[s].table && specs[s].table != r->fact &&
                 (t->tgtype & specs[s].tgtype) != specs[s].tgtype))
                return psprintf("trigger %s on %s does not capture what the rollup needs", name,
                                qualified_relation_name(rel));
        }
    }
    return NULL;
}

char *settle_capture(const Rollup *r, bool warn) {
    char *problem = capture_problem(r);
    bool was_lost = capture_marked_lost(r);
    // Written only when the answer changes: a refresh adds no row version.
    if (was_lost != (problem != NULL)) mark_capture_lost(r, problem != NULL);
    if (problem != NULL && !was_lost && warn)
        ereport(WARNING, (errcode(ERRCODE_WARNING),
                          errmsg("memoria rollup \"%s\" no longer captures writes: %s", r->name, problem),
                          errdetail("Writes made now are not recorded; refreshes of the rollup fail until capture is back."),
                          errhint("Enable the trigger again (ALTER TABLE ... ENABLE TRIGGER ...): the rollup is then "
                                  "rebuilt by its next refresh.")));
    if (problem == NULL && was_lost) {
        mark_rebuild(r);
        ereport(NOTICE, (errmsg("memoria rollup \"%s\" captures writes again; its next refresh rebuilds it",
                                r->name)));
    }
    return problem;
}

void record_trigger_dependencies(const Rollup *r) {
    Existing *e;
    int n = existing_triggers(r, &e);
    for (int i = 0; i < n; i++)
        if (!e[i].cloned) record_owned_trigger(r, e[i].oid);
    Oid guard = get_trigger_oid(r->target, trigger_name(TriggerKind::Guard, r->id), true);
    if (OidIsValid(guard)) record_owned_trigger(r, guard);
}

// guard_function: memoria_internal.guard_rollup(), or InvalidOid before 0.4.0.
static Oid guard_function(void) {
    List *name = list_make2(makeString(pstrdup("memoria_internal")), makeString(pstrdup("guard_rollup")));
    if (!OidIsValid(get_namespace_oid("memoria_internal", true))) return InvalidOid;
    return LookupFuncName(name, 0, NULL, true);
}

char *guard_problem(const Rollup *r) {
    Oid func = guard_function();
    if (!OidIsValid(func)) return NULL;
    const char *name = trigger_name(TriggerKind::Guard, r->id);
    Oid types[2] = {OIDOID, TEXTOID};
    Datum values[2] = {ObjectIdGetDatum(r->target), CStringGetTextDatum(name)};
    MemoryContext caller = CurrentMemoryContext;
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("SELECT t.tgfoid, t.tgenabled FROM pg_catalog.pg_trigger t WHERE t.tgrelid = $1 AND t.tgname = $2::name",
             2, types, values, NULL, false);
    leave_catalog_session(cs);
    char *problem = NULL;
    if (SPI_processed == 0) {
        problem = psprintf("its trigger %s is missing", name);
    } else {
        bool isnull;
        Oid tgfoid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        char enabled = DatumGetChar(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
        if (tgfoid != func) problem = psprintf("its trigger %s is not memoria's", name);
        else if (enabled == TRIGGER_DISABLED) problem = psprintf("its trigger %s would be disabled", name);
        else if (enabled == TRIGGER_FIRES_ON_REPLICA)
            problem = psprintf("its trigger %s would fire only in replica sessions", name);
    }
    if (problem) problem = MemoryContextStrdup(caller, problem);
    SPI_finish();
    return problem;
}

void ensure_guard_trigger(const Rollup *r) {
    if (!OidIsValid(guard_function())) return;  // older SQL: no guard yet
    const char *name = trigger_name(TriggerKind::Guard, r->id);
    char *table = qualified_relation_name(r->target);
    Oid trigger = get_trigger_oid(r->target, name, true);
    if (!OidIsValid(trigger)) {
        run_own_ddl(psprintf("CREATE TRIGGER %s BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s "
                             "FOR EACH STATEMENT EXECUTE FUNCTION memoria_internal.guard_rollup()",
                             quote_identifier(name), table));
        trigger = get_trigger_oid(r->target, name, false);
    } else if (guard_problem(r) != NULL) {
        run_own_ddl(psprintf("ALTER TABLE %s ENABLE TRIGGER %s", table, quote_identifier(name)));
    }
    record_owned_trigger(r, trigger);
}

void drop_triggers(const Rollup *r) {
    Existing *e;
    int n = existing_triggers(r, &e);
    for (int i = 0; i < n; i++)
        if (!e[i].cloned) drop_trigger(r, e[i]);  // clones go with their parent
    const char *guard = trigger_name(TriggerKind::Guard, r->id);
    if (OidIsValid(get_trigger_oid(r->target, guard, true)))
        run_own_ddl(psprintf("DROP TRIGGER %s ON %s", quote_identifier(guard), qualified_relation_name(r->target)));
}

}  // namespace memoria

using namespace memoria;

// memoria_internal.guard_rollup(): BEFORE INSERT OR UPDATE OR DELETE OR
// TRUNCATE FOR EACH STATEMENT on every rollup table.  Only memoria's own
// statements (in a rollup session) write a rollup table: any other write
// would be silently undone, or kept and wrong, at the next refresh.
MEMORIA_FUNCTION(memoria_guard_rollup) {
    if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "memoria_internal.guard_rollup() must be called as a trigger");
    if (writing_rollup) return PointerGetDatum(NULL);
    TriggerData *td = (TriggerData *) fcinfo->context;
    TriggerEvent ev = td->tg_event;
    const char *what = TRIGGER_FIRED_BY_INSERT(ev)   ? "insert into"
                       : TRIGGER_FIRED_BY_UPDATE(ev) ? "update"
                       : TRIGGER_FIRED_BY_DELETE(ev) ? "delete from"
                                                     : "truncate";
    ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                    errmsg("cannot %s rollup table %s: memoria maintains its rows", what,
                           qualified_relation_name(RelationGetRelid(td->tg_relation))),
                    errhint("Its rows are recomputed from the source by memoria.refresh(), refresh_window() and "
                            "backfill(): correct the source instead.  memoria.drop_rollup() leaves the table as a "
                            "plain one.")));
    PG_RETURN_NULL();
}

// live.cpp: the keys a rollup's <target>_live view recomputes.
//
// <target>_live (statements.cpp, live_view_sql) is the rollup table for the
// keys that are clean and a fresh aggregation of the source for the keys
// still pending, so that it equals a fresh GROUP BY at the reader's snapshot.
// memoria_internal.live_keys(rollup) says which keys are pending, read at the
// calling query's snapshot (the view reads the rollup and the source at that
// same snapshot): the dirty log's keys, the keys this transaction has not
// written to the log yet, and in updated_at mode the keys of rows stamped
// after the last scan.  Keys of frozen buckets are left out (their rollup rows
// are history).  Where everything must be recomputed (a TRUNCATE pending, or a
// backfill not done) one row instead says from which bucket on.
#include "args.hpp"
#include "catalog.hpp"
#include "delta_set.hpp"
#include "dirty_set.hpp"
#include "expressions.hpp"
#include "guard.hpp"
#include "statements.hpp"
#include "view_source.hpp"
#include "triggers.hpp"

extern "C" {
#include "catalog/pg_inherits.h"
#include "parser/parse_func.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "storage/proc.h"
}

namespace memoria {

// live_keys_exists: whether this SQL version has live_keys (older ones,
// before ALTER EXTENSION UPDATE, get no view).
static bool live_keys_exists(void) {
    List *name = list_make2(makeString(pstrdup("memoria_internal")), makeString(pstrdup("live_keys")));
    Oid arg = INT4OID;
    return OidIsValid(LookupFuncName(name, 1, &arg, true));
}

char *live_view_name(const Rollup *r, bool quiet) {
    const char *table = get_rel_name(r->target);
    if (table == NULL) return NULL;
    if (strlen(table) + strlen("_live") >= NAMEDATALEN) {
        if (quiet) return NULL;
        ereport(ERROR, (errcode(ERRCODE_NAME_TOO_LONG),
                        errmsg("target: rollup table name \"%s\" leaves no room for its view \"%s_live\"", table, table),
                        errhint("Name the rollup table %d bytes or fewer (target => ...).", NAMEDATALEN - 1 - 5)));
    }
    return quote_qualified_identifier(get_namespace_name(get_rel_namespace(r->target)), psprintf("%s_live", table));
}

void create_live_view(const Rollup *r) {
    if (!live_keys_exists()) return;
    char *view = live_view_name(r, true);
    if (view == NULL) {
        ereport(WARNING, (errcode(ERRCODE_NAME_TOO_LONG),
                          errmsg("rollup \"%s\" gets no _live view: its table's name leaves no room for \"_live\"",
                                 r->name),
                          errhint("Name the rollup table %d bytes or fewer (target => ...).", NAMEDATALEN - 1 - 5)));
        return;
    }
    Oid taken = RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(view)), NoLock, true);
    if (OidIsValid(taken)) {
        ereport(WARNING, (errcode(ERRCODE_DUPLICATE_TABLE),
                          errmsg("rollup \"%s\" gets no _live view: relation %s exists", r->name, view),
                          errhint("Rename that relation, then, as a superuser, SELECT "
                                  "memoria_internal.create_live_view(id) FROM memoria.rollups WHERE name = %s.",
                                  quote_literal_cstr(r->name))));
        return;
    }
    // On a Citus coordinator the view stays local, as memoria's tables it
    // reads: not handed to Citus, which would only warn that it cannot
    // propagate it.
    int nest = NewGUCNestLevel();
    if (GetConfigOption("citus.enable_ddl_propagation", true, false) != NULL)
        (void) set_config_option("citus.enable_ddl_propagation", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                                 true, 0, false);
    run_rollup_ddl(r, live_view_sql(r, view));
    // Made by ALTER EXTENSION UPDATE, it would be the extension's: it is the
    // rollup owner's, as one made by create_rollup.
    if (creating_extension) {
        Oid oid = find_live_view(r);
        if (OidIsValid(oid))
            deleteDependencyRecordsForClass(RelationRelationId, oid, ExtensionRelationId, DEPENDENCY_EXTENSION);
        CommandCounterIncrement();
    }
    run_own_ddl(psprintf("COMMENT ON VIEW %s IS %s", view,
                         quote_literal_cstr(psprintf("memoria: rollup %s, exact at your snapshot (pending keys "
                                                     "recomputed from the source)", r->name))),
                r->owner);
    AtEOXact_GUC(true, nest);
}

Oid find_live_view(const Rollup *r) {
    // The view that reads the rollup table and calls live_keys(<its id>)
    // (found by what it depends on and calls, not by name: the table may
    // have been renamed since).
    Oid types[2] = {OIDOID, TEXTOID};
    Datum values[2] = {ObjectIdGetDatum(r->target), CStringGetTextDatum(psprintf("%%live_keys(%d)%%", r->id))};
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_rewrite w ON w.ev_class = c.oid "
             "JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass "
             "  AND d.objid = w.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = $1 "
             "WHERE c.relkind = 'v' AND pg_catalog.pg_get_viewdef(c.oid) LIKE $2 LIMIT 1",
             2, types, values, NULL, false);
    Oid view = InvalidOid;
    if (SPI_processed > 0) {
        bool isnull;
        view = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    }
    leave_catalog_session(cs);
    SPI_finish();
    return view;
}

static void drop_view(Oid view) {
    run_own_ddl(psprintf("DROP VIEW %s",
                         quote_qualified_identifier(get_namespace_name(get_rel_namespace(view)), get_rel_name(view))));
}

void drop_live_view(const Rollup *r) {
    Oid view = find_live_view(r);
    if (OidIsValid(view)) drop_view(view);
}

// ALTER TABLE ... ALTER COLUMN TYPE or DROP COLUMN on a rollup's source or
// table would be refused by PostgreSQL for the _live view's sake, before
// memoria could say whether the rollup still fits: the views of those
// rollups stand aside until the command ends (and come back then).
static List *views_set_aside = NIL;  // rollup ids, in TopTransactionContext
static LocalTransactionId set_aside_in = InvalidLocalTransactionId;

// view_uses_column: whether the view's query reads column `name` of rel.
static bool view_uses_column(Oid view, Oid rel, const char *name) {
    AttrNumber attnum = get_attnum(rel, name);
    if (attnum == InvalidAttrNumber) return false;
    Oid types[3] = {OIDOID, OIDOID, INT4OID};
    Datum values[3] = {ObjectIdGetDatum(view), ObjectIdGetDatum(rel), Int32GetDatum(attnum)};
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid "
             "WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND w.ev_class = $1 "
             "AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = $2 AND d.refobjsubid = $3)",
             3, types, values, NULL, false);
    bool uses = spi_bool(1);
    leave_catalog_session(cs);
    SPI_finish();
    return uses;
}

void live_views_before_ddl(Node *parsetree) {
    if (parsetree == NULL || !IsA(parsetree, AlterTableStmt)) return;
    AlterTableStmt *stmt = (AlterTableStmt *) parsetree;
    List *columns = NIL;  // names whose type changes or that go
    ListCell *lc;
    foreach (lc, stmt->cmds) {
        AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);
        if ((cmd->subtype == AT_AlterColumnType || cmd->subtype == AT_DropColumn) && cmd->name != NULL)
            columns = lappend(columns, cmd->name);
    }
    if (columns == NIL || stmt->relation == NULL) return;
    // (In the caller's search_path: on_ddl_start pins none.  memoria's own
    // SQL below runs in the catalog session.)
    Oid rel = RangeVarGetRelid(stmt->relation, NoLock, true);
    if (!OidIsValid(rel)) return;
    // Only for the table's owner: anyone else's ALTER fails anyway, and must
    // not make memoria lock a view in the meantime.
    if (!pg_class_ownercheck(rel, GetUserId())) return;
    // The table, and (unless ONLY) the partitions and children the command
    // reaches too.
    List *tables = stmt->relation->inh ? find_all_inheritors(rel, NoLock, NULL) : list_make1_oid(rel);
    if (set_aside_in != MyProc->lxid) {
        views_set_aside = NIL;
        set_aside_in = MyProc->lxid;
    }
    foreach (lc, all_rollups()) {
        const Rollup *r = (const Rollup *) lfirst(lc);
        Oid table = list_member_oid(tables, r->source) ? r->source : list_member_oid(tables, r->target) ? r->target
                                                                                                     : InvalidOid;
        if (!OidIsValid(table)) continue;
        Oid view = find_live_view(r);
        if (!OidIsValid(view)) continue;
        // Only a view that reads a column the command changes stands aside
        // (it then loses its grants: made again, it has its owner's only).
        bool uses = false;
        ListCell *c;
        foreach (c, columns) uses = uses || view_uses_column(view, table, (const char *) lfirst(c));
        if (!uses) continue;
        drop_view(view);
        MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
        views_set_aside = lappend_int(views_set_aside, r->id);
        MemoryContextSwitchTo(old);
    }
}

void live_views_after_ddl(void) {
    if (set_aside_in != MyProc->lxid || views_set_aside == NIL) return;
    List *ids = views_set_aside;
    views_set_aside = NIL;
    ListCell *lc;
    foreach (lc, ids) {
        Rollup *r = find_rollup_by_id(lfirst_int(lc));
        if (r != NULL && !OidIsValid(find_live_view(r))) create_live_view(r);
    }
}

namespace {

struct LiveKeys {
    const Rollup *r;
    Tuplestorestate *out;
    TupleDesc out_desc;  // rebuild_from, then the log's columns
    bool has_open;       // frozen buckets before `open`
    Datum open;
    bool rebuild;
};

// Whether key bucket b (a log row's first column) is of a frozen bucket.
bool frozen(const LiveKeys *k, Datum b) { return k->has_open && time_less(k->r, b, k->open); }

void put_key(LiveKeys *k, const Datum *values, const bool *isnull, int natts) {
    if (isnull[0]) {  // TRUNCATE: everything
        k->rebuild = true;
        return;
    }
    if (frozen(k, values[0])) return;
    Datum row[1 + MAX_SCOPE + 1];
    bool nulls[1 + MAX_SCOPE + 1];
    row[0] = (Datum) 0;
    nulls[0] = true;
    for (int a = 0; a < natts; a++) {
        row[1 + a] = values[a];
        nulls[1 + a] = isnull[a];
    }
    tuplestore_putvalues(k->out, k->out_desc, row, nulls);
}

// Run SQL read-only, at the calling query's snapshot.
void read_at_query_snapshot(const char *sql, int nargs, Oid *types, Datum *values) {
    int ret = SPI_execute_with_args(sql, nargs, types, values, NULL, true, 0);
    if (ret < 0) elog(ERROR, "memoria: live_keys query failed: %s", SPI_result_code_string(ret));
}

void put_result_keys(LiveKeys *k) {
    TupleDesc desc = SPI_tuptable->tupdesc;
    int natts = desc->natts;
    Datum values[1 + MAX_SCOPE];
    bool isnull[1 + MAX_SCOPE];
    for (uint64 i = 0; i < SPI_processed; i++) {
        for (int a = 0; a < natts; a++) values[a] = SPI_getbinval(SPI_tuptable->vals[i], desc, a + 1, &isnull[a]);
        put_key(k, values, isnull, natts);
    }
}

// put_own_log_keys: the keys this transaction wrote to the log, whether or
// not the query's snapshot sees them.  One written after the snapshot was
// taken (an early flush, a flush before a refresh this transaction ran) is
// invisible to it, and may be consumed already; the rollup rows the snapshot
// sees are then older than those writes.
template <typename Put>
void scan_own_rows(Oid log_oid, Put put) {
    if (!TransactionIdIsValid(GetTopTransactionIdIfAny())) return;  // it wrote nothing
    Relation log = table_open(log_oid, AccessShareLock);
    TupleDesc desc = RelationGetDescr(log);
    TableScanDesc scan = table_beginscan(log, SnapshotAny, 0, NULL);
    Datum *values = (Datum *) palloc((desc->natts + 1) * sizeof(Datum));
    bool *isnull = (bool *) palloc((desc->natts + 1) * sizeof(bool));
    HeapTuple tuple;
    while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL) {
        if (!TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetRawXmin(tuple->t_data))) continue;
        heap_deform_tuple(tuple, desc, values, isnull);
        put(values, isnull, desc->natts);
    }
    table_endscan(scan);
    table_close(log, AccessShareLock);
}

void put_own_log_keys(LiveKeys *k) {
    scan_own_rows(k->r->dirty_log, [k](Datum *values, bool *isnull, int natts) { put_key(k, values, isnull, natts); });
}

// put_delta_keys: the keys of the additive path's pending partials (the
// delta log's rows the query's snapshot sees, and this transaction's own:
// written, or still in its set, made dirty keys now).  (Catalog session.)
void put_delta_keys(LiveKeys *k) {
    const Rollup *r = k->r;
    demote_deltas_now();
    if (!OidIsValid(r->delta_log) || get_rel_name(r->delta_log) == NULL) return;
    // The delta log's bucket and scope columns (additive.hpp).
    int ncols = 1 + r->nscope;
    int *col = (int *) palloc(ncols * sizeof(int));
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfoString(&sql, "SELECT DISTINCT bucket");
    col[0] = 0;
    for (int i = 0; i < r->nscope; i++)
        for (int j = 0; j < r->ndims; j++)
            if (r->dim_attnums[j] == r->scope_attnums[i]) {
                appendStringInfo(&sql, ", g%d", j + 1);
                col[1 + i] = 1 + j;
            }
    appendStringInfo(&sql, " FROM %s", qualified_relation_name(r->delta_log));
    read_at_query_snapshot(sql.data, 0, NULL, NULL);
    put_result_keys(k);
    Datum *picked = (Datum *) palloc(ncols * sizeof(Datum));
    bool *picked_null = (bool *) palloc(ncols * sizeof(bool));
    scan_own_rows(r->delta_log, [&](Datum *values, bool *isnull, int natts) {
        for (int i = 0; i < ncols; i++) {
            picked[i] = values[col[i]];
            picked_null[i] = isnull[col[i]];
        }
        put_key(k, picked, picked_null, ncols);
    });
}

// put_link_keys: the keys of the fact rows a view source's pending writes
// to its joined tables reach (the log's rows the query's snapshot sees, and
// this transaction's own), through the join as the query's snapshot sees it.
// (In the catalog session, SPI connected.)
void put_link_keys(LiveKeys *k) {
    const Rollup *r = k->r;
    if (!OidIsValid(r->link_log) || r->join == NULL) return;
    LinkValues *lv = new_link_values(r);
    auto add = [lv](const Datum *v, const bool *isnull, int natts) { add_link_values(lv, v[0], v + 1, isnull + 1, natts - 1); };
    read_at_query_snapshot(psprintf("SELECT * FROM %s", qualified_relation_name(r->link_log)), 0, NULL, NULL);
    for (uint64 i = 0; i < SPI_processed; i++) {
        Datum values[1 + MAX_LINK_KEYS];
        bool isnull[1 + MAX_LINK_KEYS];
        int natts = Min(SPI_tuptable->tupdesc->natts, 1 + MAX_LINK_KEYS);
        for (int a = 0; a < natts; a++)
            values[a] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, a + 1, &isnull[a]);
        add(values, isnull, natts);
    }
    Relation log = table_open(r->link_log, AccessShareLock);
    TupleDesc desc = CreateTupleDescCopy(RelationGetDescr(log));
    table_close(log, AccessShareLock);
    Datum *values;
    bool *nulls;
    int n = unwritten_keys(r->link_log, desc, &values, &nulls);
    for (int i = 0; i < n; i++) add(values + i * desc->natts, nulls + i * desc->natts, desc->natts);
    scan_own_rows(r->link_log, [&add](Datum *v, bool *isnull, int natts) { add(v, isnull, natts); });
    if (!decode_link_values(lv)) {  // (a renamed enum label): recompute everything
        k->rebuild = true;
        return;
    }
    for (int t = 0; t < r->join->ntables; t++) {
        Params p;
        if (!link_values_params(lv, t, &p)) continue;
        RollupSession rs = enter_rollup_session(r);
        read_at_query_snapshot(linked_keys_sql(r, t), p.n, p.types, p.values);
        put_result_keys(k);
        leave_rollup_session(rs);
    }
}

// check_reader_settings: the view recomputes pending keys with the reader's
// settings; where the rollup's expressions read them (date/time functions),
// they must be the rollup's, or its answer would differ from the rollup's.
void check_reader_settings(const Rollup *r) {
    StringInfoData sets;
    initStringInfo(&sets);
    if (r->time_zone && pg_strcasecmp(GetConfigOption("TimeZone", false, false), r->time_zone) != 0)
        appendStringInfo(&sets, "SET TimeZone = %s; ", quote_literal_cstr(r->time_zone));
    for (int i = 0; i < r->nsettings; i++) {
        const char *eq = strchr(r->settings[i], '=');
        if (eq == NULL) continue;
        char *name = pnstrdup(r->settings[i], eq - r->settings[i]);
        const char *now = GetConfigOption(name, true, false);
        if (now != NULL && strcmp(now, eq + 1) != 0)
            appendStringInfo(&sets, "SET %s = %s; ", quote_identifier(name), quote_literal_cstr(eq + 1));
    }
    if (sets.len == 0 || !expressions_read_session(r)) return;
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("rollup \"%s\" computes its expressions with other settings than this session's", r->name),
                    errdetail("Its measures, dimensions or filter call date/time functions, whose results follow the "
                              "session's settings; its _live view would recompute pending keys with yours."),
                    errhint("%sthen read the view (the rollup table itself needs no setting).", sets.data)));
}

}  // namespace

}  // namespace memoria

using namespace memoria;

// memoria_internal.live_keys(rollup_id): (rebuild_from, bucket, scope...) of
// the pending keys, rebuild_from NULL; or one row (rebuild_from, NULL...)
// when every bucket from rebuild_from on must be recomputed.
MEMORIA_FUNCTION(memoria_live_keys) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("rollup %d does not exist", PG_GETARG_INT32(0)),
                        errhint("Its _live view outlived it: drop the view.")));
    // Only keys: no more than reading the rollup table shows.
    // Only keys, and only to those who may read the rollup table and all of
    // the source: keys exist for rows the filter, or row level security,
    // would hide.
    Oid source_denied = pg_class_aclcheck(r->target, GetUserId(), ACL_SELECT) != ACLCHECK_OK ? r->target
                        : pg_class_aclcheck(r->source, GetUserId(), ACL_SELECT) != ACLCHECK_OK ? r->source
                                                                                               : InvalidOid;
    if (OidIsValid(source_denied))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("permission denied for table %s", qualified_relation_name(source_denied)),
                        errhint("Reading a rollup's _live view needs SELECT on the rollup table and its source.")));
    List *secured = lappend_oid(captured_tables(r), r->source);
    ListCell *lc;
    foreach (lc, secured)
        if (check_enable_rls(lfirst_oid(lc), InvalidOid, true) == RLS_ENABLED)
            ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                            errmsg("row level security on %s applies to you: its rollup's _live view would show keys "
                                   "of rows hidden from you", qualified_relation_name(lfirst_oid(lc))),
                            errhint("Read the rollup table, or read _live as a role the policies do not apply to.")));
    check_reader_settings(r);
    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    LiveKeys k;
    memset(&k, 0, sizeof k);
    k.r = r;
    k.out = rsinfo->setResult;
    k.out_desc = rsinfo->setDesc;
    k.has_open = frozen_before(r, &k.open);

    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    Oid type = INT4OID;
    Datum id = Int32GetDatum(r->id);
    read_at_query_snapshot("SELECT needs_backfill FROM memoria.rollup_state WHERE rollup_id = $1", 1, &type, &id);
    bool isnull;
    // (No state row: restored, not adopted yet; the table holds what was dumped.)
    k.rebuild = SPI_processed > 0 && DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    read_at_query_snapshot(psprintf("SELECT DISTINCT * FROM %s", qualified_relation_name(r->dirty_log)), 0, NULL, NULL);
    put_result_keys(&k);
    put_delta_keys(&k);
    // This transaction's own writes not in the log yet.
    Relation log = table_open(r->dirty_log, AccessShareLock);
    TupleDesc log_desc = CreateTupleDescCopy(RelationGetDescr(log));
    table_close(log, AccessShareLock);
    Datum *values;
    bool *nulls;
    int n = unwritten_keys(r->dirty_log, log_desc, &values, &nulls);
    for (int i = 0; i < n; i++) put_key(&k, values + i * log_desc->natts, nulls + i * log_desc->natts, log_desc->natts);
    put_own_log_keys(&k);
    if (!k.rebuild) put_link_keys(&k);
    leave_catalog_session(cs);
    // updated_at mode: rows stamped after the last scan are pending too.
    if (r->updated_at_attnum != 0 && !k.rebuild) {
        read_at_query_snapshot("SELECT scanned_through FROM memoria.rollup_state WHERE rollup_id = $1", 1, &type, &id);
        Datum scanned = SPI_processed > 0 ? SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull) : 0;
        if (SPI_processed == 0 || isnull) {
            k.rebuild = true;
        } else {
            Params p = bucket_params(r);
            p.types[2] = TIMESTAMPTZOID;
            p.values[2] = scanned;
            p.n = 3;
            RollupSession rs = enter_rollup_session(r);
            read_at_query_snapshot(keys_updated_since_sql(r), p.n, p.types, p.values);
            put_result_keys(&k);
            leave_rollup_session(rs);
        }
    }
    SPI_finish();
    if (k.rebuild) {
        Datum row[1 + MAX_SCOPE + 1];
        bool row_nulls[1 + MAX_SCOPE + 1];
        for (int a = 0; a < k.out_desc->natts; a++) {
            row[a] = (Datum) 0;
            row_nulls[a] = true;
        }
        if (k.has_open) {
            row[0] = k.open;
        } else if (r->kind == TimeKind::Date) {
            row[0] = DateADTGetDatum(DATEVAL_NOBEGIN);
        } else {
            Timestamp t;
            TIMESTAMP_NOBEGIN(t);
            row[0] = TimestampGetDatum(t);
        }
        row_nulls[0] = false;
        tuplestore_putvalues(k.out, k.out_desc, row, row_nulls);
    }
    return (Datum) 0;
}

// memoria_internal.create_live_view(rollup_id): (again) the rollup's _live
// view (the update from 0.4.0 makes one for every rollup).
MEMORIA_FUNCTION(memoria_create_live_view) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL) PG_RETURN_VOID();
    if (live_view_name(r, true) == NULL && !OidIsValid(find_live_view(r))) {
        ereport(WARNING, (errmsg("rollup \"%s\" gets no _live view: its table's name is too long", r->name)));
        PG_RETURN_VOID();
    }
    drop_live_view(r);
    create_live_view(r);
    PG_RETURN_VOID();
}

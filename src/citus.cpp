// citus.cpp: finding Citus tables and distributed rollups, and handing
// memoria's entry points over to sql/src/citus.sql for them (citus.hpp).
#include <initializer_list>
#include <utility>

#include "adopt.hpp"
#include "catalog.hpp"
#include "citus.hpp"
#include "expressions.hpp"
#include "guard.hpp"
#include "session.hpp"

namespace memoria {

bool citus_table(Oid rel) {
    if (!OidIsValid(get_extension_oid("citus", true))) return false;
    if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE))) return false;
    Oid type = OIDOID;
    Datum value = ObjectIdGetDatum(rel);
    SPI_connect();
    spi_exec("SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1", 1, &type, &value, NULL, true);
    bool found = SPI_processed > 0;
    SPI_finish();
    return found;
}

bool citus_shard(Oid rel, bool hash_only) {
    if (!OidIsValid(get_extension_oid("citus", true))) return false;
    if (!OidIsValid(get_relname_relid("pg_dist_shard", PG_CATALOG_NAMESPACE))) return false;
    // A shard is named <table>_<shard id>, in its table's schema.
    const char *name = get_rel_name(rel);
    const char *digits = name ? strrchr(name, '_') : NULL;
    if (digits == NULL || digits[1] == '\0' || strspn(digits + 1, "0123456789") != strlen(digits + 1) ||
        strlen(digits + 1) > 18)
        return false;
    Oid types[3] = {INT8OID, TEXTOID, OIDOID};
    Datum values[3] = {Int64GetDatum(strtoll(digits + 1, NULL, 10)),
                       CStringGetTextDatum(pnstrdup(name, digits - name)),
                       ObjectIdGetDatum(get_rel_namespace(rel))};
    SPI_connect();
    spi_exec(hash_only ? "SELECT 1 FROM pg_catalog.pg_dist_shard s JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid "
                         "JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid = s.logicalrelid "
                         "WHERE s.shardid = $1 AND c.relname = $2 AND c.relnamespace = $3 AND p.partmethod = 'h'"
                       : "SELECT 1 FROM pg_catalog.pg_dist_shard s JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid "
                         "WHERE s.shardid = $1 AND c.relname = $2 AND c.relnamespace = $3",
             3, types, values, NULL, true);
    bool found = SPI_processed > 0;
    SPI_finish();
    return found;
}

bool citus_rollup_exists(const char *name) {
    Oid nsp = get_namespace_oid("memoria", true);
    // (Before 0.8.0's SQL there is no such table.)
    if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("citus_rollups", nsp))) return false;
    Oid type = TEXTOID;
    Datum value = CStringGetTextDatum(name);
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("SELECT 1 FROM memoria.citus_rollups WHERE name = $1", 1, &type, &value, NULL, true);
    bool found = SPI_processed > 0;
    leave_catalog_session(cs);
    SPI_finish();
    return found;
}

// explicit_search_path: a search_path with "$user" spelled out as the
// current user: the shard rollups, made later by whoever refreshes, resolve
// the expressions as their creator did.
static char *explicit_search_path(const char *search_path) {
    List *names;
    char *raw = pstrdup(search_path);
    if (!SplitIdentifierString(raw, ',', &names)) return pstrdup(search_path);
    StringInfoData out;
    initStringInfo(&out);
    ListCell *lc;
    foreach (lc, names) {
        const char *name = (const char *) lfirst(lc);
        if (strcmp(name, "$user") == 0) name = GetUserNameFromId(GetUserId(), false);
        appendStringInfo(&out, "%s%s", out.len > 0 ? ", " : "", quote_identifier(name));
    }
    return out.data;
}

void citus_distribute_rollup_table(FunctionCallInfo fcinfo, Oid source, Oid target, bool default_schema,
                                   const char *search_path) {
    if (!citus_table(source))
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("source %s is not a hash-distributed Citus table", qualified_relation_name(source)),
                        errhint("Use memoria.create_rollup(): it makes a rollup of any table.")));
    Oid type = OIDOID;
    Datum value = ObjectIdGetDatum(source);
    MemoryContext caller = CurrentMemoryContext;
    SPI_connect();
    spi_exec("SELECT pg_catalog.column_to_column_name(logicalrelid, partkey) FROM pg_catalog.pg_dist_partition "
             "WHERE logicalrelid = $1 AND partmethod = 'h'",
             1, &type, &value, NULL, true);
    if (SPI_processed != 1)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("source %s is not a hash-distributed Citus table", qualified_relation_name(source))));
    char *column = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
    SPI_finish();
    // As the extension's owner: Citus then makes the shards itself (in
    // memoria_rollup too, where the caller may not create tables on the
    // workers), owned by the table's owner, the caller.
    Oid types[3] = {REGCLASSOID, TEXTOID, TEXTOID};
    Datum values[3] = {ObjectIdGetDatum(target), CStringGetTextDatum(column),
                       CStringGetTextDatum(qualified_relation_name(source))};
    SPI_connect();
    CatalogSession distributing = enter_catalog_session();
    spi_exec("SELECT pg_catalog.create_distributed_table($1, $2, colocate_with => $3)", 3, types, values, NULL, false);
    leave_catalog_session(distributing);
    SPI_finish();
    // The definition each shard rollup is made from: create_rollup's arguments.
    Oid dtypes[12] = {TEXTOID, REGCLASSOID, REGCLASSOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID,
                      INTERVALOID, TEXTOID, TEXTARRAYOID, TEXTOID, TEXTOID, TEXTOID};
    Datum dvalues[12];
    char dnulls[12];
    int args[8] = {2, 3, 4, 5, 6, 7, 8};  // time_column .. filter
    dvalues[0] = PG_GETARG_DATUM(0);
    dvalues[1] = ObjectIdGetDatum(source);
    dvalues[2] = ObjectIdGetDatum(target);
    dnulls[0] = dnulls[1] = dnulls[2] = ' ';
    for (int i = 0; i < 7; i++) {
        dvalues[3 + i] = PG_ARGISNULL(args[i]) ? (Datum) 0 : PG_GETARG_DATUM(args[i]);
        dnulls[3 + i] = PG_ARGISNULL(args[i]) ? 'n' : ' ';
    }
    dvalues[10] = CStringGetTextDatum(explicit_search_path(search_path));
    dnulls[10] = ' ';
    // (And its distribution column, for the way back after a restore.)
    dvalues[11] = CStringGetTextDatum(column);
    dnulls[11] = ' ';
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("INSERT INTO memoria.citus_rollups (name, source, target, definition) VALUES ($1, $2, $3, "
             "pg_catalog.jsonb_build_object('name', $1, 'time_column', $4, 'dimensions', $5, 'measures', $6, "
             "'bucket', $7, 'time_zone', $8, 'scope', $9, 'filter', $10, 'search_path', $11, 'distributed_by', $12))",
             12, dtypes, dvalues, dnulls, false);
    leave_catalog_session(cs);
    SPI_finish();
}

bool citus_rollups_exist(void) {
    Oid nsp = get_namespace_oid("memoria", true);
    if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("citus_rollups", nsp))) return false;
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("SELECT 1 FROM memoria.citus_rollups LIMIT 1", 0, NULL, NULL, NULL, true);
    bool found = SPI_processed > 0;
    leave_catalog_session(cs);
    SPI_finish();
    return found;
}

void citus_drop_before_extension(void) {
    if (!OidIsValid(get_extension_oid("citus", true)) || !citus_rollups_exist()) return;
    SPI_connect();
    spi_exec("SELECT memoria_internal.citus_drop_all_rollups()", 0, NULL, NULL, NULL, false);
    SPI_finish();
}

const char *citus_due_rollups_sql(void) {
    if (!citus_rollups_exist()) return NULL;
    // (A distributed rollup keeps the default refresh_interval of 1 minute:
    // alter_rollup does not change them.)
    // A rollup of another's table after it (citus_chain_depth), and due at
    // once when the distributed rollup below it was refreshed after it (as
    // a local rollup of a rollup is).
    return "SELECT r.name, c.relowner, CASE WHEN r.last_refresh_at IS NULL THEN 0 "
           "  WHEN EXISTS (SELECT 1 FROM memoria.citus_rollups p WHERE p.target = r.source"
           "               AND p.last_refresh_at > r.last_refresh_at) THEN 0 "
           "  ELSE greatest(0, extract(epoch FROM r.last_refresh_at + interval '1 minute' "
           "                           - pg_catalog.clock_timestamp()) * 1000) END::float8 "
           "FROM memoria.citus_rollups r JOIN pg_catalog.pg_class c ON c.oid = r.source "
           "JOIN memoria_internal.citus_chain_depth() d ON d.name = r.name ORDER BY d.depth, r.name";
}

void citus_check_ddl(List *tables) {
    if (tables == NIL || !citus_rollups_exist()) return;
    Oid type = OIDARRAYOID;
    Datum value = oid_array_datum(tables);
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("SELECT name FROM memoria.citus_rollups WHERE source = ANY ($1::pg_catalog.regclass[]) "
             "OR rollup_table = ANY ($1::pg_catalog.regclass[]) OR outbox = ANY ($1::pg_catalog.regclass[]) ORDER BY 1", 1,
             &type, &value, NULL, true);
    leave_catalog_session(cs);
    List *names = NIL;
    for (uint64 i = 0; i < SPI_processed; i++)
        names = lappend(names, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
    ListCell *lc;
    foreach (lc, names) {
        // As whoever changed the table: its owner, or a superuser.
        Oid ntype = TEXTOID;
        Datum name = CStringGetTextDatum((const char *) lfirst(lc));
        spi_exec("SELECT memoria_internal.citus_validate($1)", 1, &ntype, &name, NULL, false);
    }
    SPI_finish();
}

Datum citus_forward(FunctionCallInfo fcinfo, const char *function) {
    HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
    if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
    Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);
    int nargs = proc->pronargs;
    Oid argtypes[FUNC_MAX_ARGS];
    memcpy(argtypes, proc->proargtypes.values, nargs * sizeof(Oid));
    ReleaseSysCache(tup);
    List *name = list_make2(makeString(pstrdup("memoria_internal")), makeString(pstrdup(function)));
    Oid fn = LookupFuncName(name, nargs, argtypes, false);
    FmgrInfo flinfo;
    fmgr_info(fn, &flinfo);
    LOCAL_FCINFO(call, FUNC_MAX_ARGS);
    InitFunctionCallInfoData(*call, &flinfo, fcinfo->nargs, fcinfo->fncollation, fcinfo->context, fcinfo->resultinfo);
    for (int i = 0; i < fcinfo->nargs; i++) call->args[i] = fcinfo->args[i];
    Datum result = FunctionCallInvoke(call);
    fcinfo->isnull = call->isnull;
    return result;
}

void citus_check_drop(List *relations) {
    Oid nsp = get_namespace_oid("memoria", true);
    Oid catalog = OidIsValid(nsp) ? get_relname_relid("citus_rollups", nsp) : InvalidOid;
    if (relations == NIL || !OidIsValid(catalog) || list_member_oid(relations, catalog)) return;
    Oid type = OIDARRAYOID;
    Datum value = oid_array_datum(relations);
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    // (The oldest rollup named, so that the message does not depend on
    // where a row lies.)
    spi_exec("SELECT name, what FROM ("
             "SELECT name, CASE WHEN source = ANY ($1::pg_catalog.regclass[]) THEN 'source table' "
             "WHEN target = ANY ($1::pg_catalog.regclass[]) AND rollup_table IS NOT NULL THEN 'partials table' "
             "WHEN outbox = ANY ($1::pg_catalog.regclass[]) THEN 'changes table' ELSE 'rollup table' END AS what, "
             "created_at FROM memoria.citus_rollups WHERE source = ANY ($1::pg_catalog.regclass[]) "
             "OR target = ANY ($1::pg_catalog.regclass[]) OR rollup_table = ANY ($1::pg_catalog.regclass[]) "
             "OR outbox = ANY ($1::pg_catalog.regclass[]) "
             "UNION ALL SELECT r.name, 'source table', r.created_at FROM memoria.citus_placements p "
             "JOIN memoria.rollups r ON r.id = p.rollup_id WHERE p.source = ANY ($1::pg_catalog.regclass[])"
             ") named ORDER BY created_at, name LIMIT 1",
             1, &type, &value, NULL, true);
    leave_catalog_session(cs);
    if (SPI_processed > 0) {
        HeapTuple row = SPI_tuptable->vals[0];
        TupleDesc desc = SPI_tuptable->tupdesc;
        ereport(ERROR, (errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
                        errmsg("cannot drop the %s of rollup \"%s\"", SPI_getvalue(row, desc, 2),
                               SPI_getvalue(row, desc, 1)),
                        errhint("Drop the rollup first with memoria.drop_rollup('%s').  (Citus' undistribute_table and "
                                "alter_distributed_table drop and re-create the table, so they are refused too.)",
                                SPI_getvalue(row, desc, 1))));
    }
    SPI_finish();
}

void citus_append_refreshes(FunctionCallInfo fcinfo) {
    Oid nsp = get_namespace_oid("memoria", true);
    if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("citus_rollups", nsp))) return;
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    Oid type = INT8OID;
    Datum value = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
    char null = PG_ARGISNULL(1) ? 'n' : ' ';
    SPI_connect();
    spi_exec("SELECT * FROM memoria_internal.citus_refresh(NULL, $1)", 1, &type, &value, &null, false);
    for (uint64 i = 0; i < SPI_processed; i++) {
        Datum values[8];
        bool nulls[8];
        heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, values, nulls);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    SPI_finish();
}

}  // namespace memoria

using namespace memoria;

// memoria_internal.citus_forget(name): drop a distributed rollup's catalog
// row, and the rollup table's dependencies on its source and on memoria
// (it stays a plain distributed table).  For a caller who may manage it.
MEMORIA_FUNCTION(memoria_citus_forget) {
    if (PG_ARGISNULL(0)) ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("name must not be NULL")));
    Oid type = TEXTOID;
    Datum value = PG_GETARG_DATUM(0);
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("DELETE FROM memoria.citus_rollups WHERE name = $1 RETURNING source, target, rollup_table, outbox", 1,
             &type, &value, NULL, false);
    leave_catalog_session(cs);
    if (SPI_processed != 1)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("rollup \"%s\" does not exist", text_to_cstring(PG_GETARG_TEXT_PP(0)))));
    bool isnull;
    Oid source = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    Oid target = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
    Oid partial_tables[2] = {InvalidOid, InvalidOid};  // the partial mode's rollup table and changes table
    for (int k = 0; k < 2; k++) {
        Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3 + k, &isnull);
        if (!isnull) partial_tables[k] = DatumGetObjectId(d);
    }
    SPI_finish();
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(source));
    if (HeapTupleIsValid(tup)) {
        Oid owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
        ReleaseSysCache(tup);
        if (!can_manage(owner))
            ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                            errmsg("must be a member of the owner of rollup \"%s\"", text_to_cstring(PG_GETARG_TEXT_PP(0)))));
    }
    deleteDependencyRecordsForSpecific(RelationRelationId, target, DEPENDENCY_NORMAL, RelationRelationId, source);
    deleteDependencyRecordsForClass(RelationRelationId, target, ExtensionRelationId, DEPENDENCY_NORMAL);
    for (Oid t : partial_tables)
        if (OidIsValid(t)) deleteDependencyRecordsForClass(RelationRelationId, t, ExtensionRelationId, DEPENDENCY_NORMAL);
    CommandCounterIncrement();
    PG_RETURN_VOID();
}

// combiner: how the per-shard values of measure expression e combine into
// the whole (the partial mode, citus.hpp): "sum" (count, sum of an exact
// type), "min", "max", "bool_and", "bool_or"; NULL if they do not (avg,
// DISTINCT, ordered aggregates, an expression over aggregates, a sum of
// floats, which would round otherwise than one sum).
static const char *combiner(Node *e) {
    if (e == NULL || !IsA(e, Aggref)) return NULL;
    Aggref *a = (Aggref *) e;
    if (a->aggfnoid >= FirstNormalObjectId || a->aggdistinct != NIL || a->aggorder != NIL ||
        a->aggdirectargs != NIL || a->aggkind != AGGKIND_NORMAL)
        return NULL;
    const char *name = get_func_name(a->aggfnoid);
    if (strcmp(name, "count") == 0) return "sum";
    if (strcmp(name, "sum") == 0)
        return a->aggtype == FLOAT4OID || a->aggtype == FLOAT8OID ? NULL : "sum";
    if (strcmp(name, "min") == 0 || strcmp(name, "max") == 0 || strcmp(name, "bool_and") == 0 ||
        strcmp(name, "bool_or") == 0)
        return name;
    if (strcmp(name, "every") == 0) return "bool_and";
    return NULL;
}

// memoria_internal.measure_combiners(source, measures): combiner() of each
// measure (as create_rollup reads them: with the caller's search_path).
MEMORIA_FUNCTION(memoria_measure_combiners) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1)) PG_RETURN_NULL();
    const char *src = qualified_relation_name(PG_GETARG_OID(0));
    Datum *elems;
    bool *nulls;
    int n;
    deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    Datum *out = (Datum *) palloc0((n + 1) * sizeof(Datum));
    bool *out_nulls = (bool *) palloc0((n + 1) * sizeof(bool));
    for (int i = 0; i < n; i++) {
        const char *kind = NULL;
        if (!nulls[i]) {
            Query *q = analyze_query(psprintf("SELECT\n%s\nFROM %s", TextDatumGetCString(elems[i]), src),
                                     psprintf("measures[%d]", i + 1));
            if (list_length(q->targetList) == 1) kind = combiner((Node *) ((TargetEntry *) linitial(q->targetList))->expr);
        }
        out_nulls[i] = kind == NULL;
        if (kind) out[i] = CStringGetTextDatum(kind);
    }
    int dims[1] = {n};
    int lbs[1] = {1};
    PG_RETURN_ARRAYTYPE_P(construct_md_array(out, out_nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
}

// memoria_internal.citus_record_partial(name, rollup_table, outbox, combine):
// the partial mode's rollup table (on the coordinator), its changes table,
// and how its measures combine, recorded for the distributed rollup `name`
// that this transaction recorded (citus_create_rollup), if the caller
// may manage it and both tables are its source owner's.
MEMORIA_FUNCTION(memoria_citus_record_partial) {
    for (int k = 0; k < 4; k++)
        if (PG_ARGISNULL(k)) ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("arguments must not be NULL")));
    Oid type = TEXTOID;
    Datum value = PG_GETARG_DATUM(0);
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("SELECT r.xmin::text, s.relowner FROM memoria.citus_rollups r JOIN pg_catalog.pg_class s ON s.oid = r.source "
             "WHERE r.name = $1 AND r.rollup_table IS NULL", 1, &type, &value, NULL, true);
    leave_catalog_session(cs);
    bool isnull;
    TransactionId xmin = SPI_processed == 1
        ? (TransactionId) strtoul(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), NULL, 10)
        : InvalidTransactionId;
    Oid owner = SPI_processed == 1
        ? DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)) : InvalidOid;
    if (!TransactionIdIsValid(xmin) || !TransactionIdIsCurrentTransactionId(xmin) || !can_manage(owner))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("rollup \"%s\" was not made by this transaction", text_to_cstring(PG_GETARG_TEXT_PP(0))),
                        errhint("memoria.create_rollup() records a rollup's tables itself.")));
    Oid tables[2] = {PG_GETARG_OID(1), PG_GETARG_OID(2)};
    for (Oid t : tables) {
        HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(t));
        if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for relation %u", t);
        bool ours = ((Form_pg_class) GETSTRUCT(tup))->relowner == owner;
        ReleaseSysCache(tup);
        if (!ours)
            ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                            errmsg("table %s is not owned by the owner of the source", qualified_relation_name(t))));
        record_dependency(RelationRelationId, t, ExtensionRelationId, get_extension_oid("memoria", false),
                          DEPENDENCY_NORMAL);
    }
    Oid types[4] = {TEXTOID, REGCLASSOID, REGCLASSOID, TEXTARRAYOID};
    Datum values[4] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), PG_GETARG_DATUM(2), PG_GETARG_DATUM(3)};
    cs = enter_catalog_session();
    // The changes table, co-located with the source (as the extension's
    // owner, as citus_distribute_rollup_table).
    spi_exec("SELECT pg_catalog.create_distributed_table($3, pg_catalog.column_to_column_name(p.logicalrelid, p.partkey), "
             "colocate_with => p.logicalrelid::pg_catalog.regclass::pg_catalog.text) "
             "FROM pg_catalog.pg_dist_partition p JOIN memoria.citus_rollups r ON r.source = p.logicalrelid "
             "WHERE r.name = $1",
             3, types, values, NULL, false);
    spi_exec("UPDATE memoria.citus_rollups SET rollup_table = $2, outbox = $3, definition = definition || "
             "pg_catalog.jsonb_build_object('partial', pg_catalog.jsonb_build_object('outbox', "
             "$3::pg_catalog.text, 'combine', $4, 'column', (SELECT pg_catalog.column_to_column_name(p.logicalrelid, "
             "p.partkey) FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = source))) WHERE name = $1",
             4, types, values, NULL, false);
    leave_catalog_session(cs);
    SPI_finish();
    PG_RETURN_VOID();
}

// memoria_internal.citus_settle_owner(name): a rollup is its source owner's
// (adopt.hpp).  On the nodes, the shard rollups give their table shards to
// the source's new owner; here, before a fan-out, the rollup table follows,
// in a transaction of its own (Citus' run_command_on_coordinator) that the
// nodes then see.  (The DDL hook cannot: it sees a distributed table's new
// owner only after it ran.)  For a caller who may manage the rollup.
MEMORIA_FUNCTION(memoria_citus_settle_owner) {
    if (PG_ARGISNULL(0)) PG_RETURN_VOID();
    Oid type = TEXTOID;
    Datum value = PG_GETARG_DATUM(0);
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    // One command (run_command_on_coordinator prepares it), which waits
    // at most 5 s for the table: a DO block, dollar-quoted with a tag no
    // name can contain (its own md5).
    // (The rollup table, and the partial mode's own two tables.)
    spi_exec("SELECT pg_catalog.format('DO %1$s BEGIN SET LOCAL lock_timeout = ''5s''; %2$s END %1$s', "
             "       '$m' || pg_catalog.md5(a.commands) || '$', a.commands), s.relowner "
             "FROM memoria.citus_rollups r JOIN pg_catalog.pg_class s ON s.oid = r.source, "
             "LATERAL (SELECT pg_catalog.string_agg(pg_catalog.format('EXECUTE %L;', pg_catalog.format("
             "                 'ALTER TABLE %s OWNER TO %I', t.oid::pg_catalog.regclass, "
             "                 pg_catalog.pg_get_userbyid(s.relowner))), ' ') AS commands "
             "         FROM pg_catalog.pg_class t WHERE t.oid IN (r.target, r.rollup_table, r.outbox) "
             "           AND t.relowner <> s.relowner) a "
             "WHERE r.name = $1 AND a.commands IS NOT NULL",
             1, &type, &value, NULL, true);
    leave_catalog_session(cs);
    if (SPI_processed == 1) {
        bool isnull;
        Oid owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
        Datum command = CStringGetTextDatum(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
        if (can_manage(owner)) {
            cs = enter_catalog_session();
            spi_exec("SELECT result FROM pg_catalog.run_command_on_coordinator($1) WHERE NOT success", 1, &type,
                     &command, NULL, false);
            leave_catalog_session(cs);
            if (SPI_processed > 0)
                ereport(WARNING, (errmsg("could not give the table of rollup \"%s\" to its source's new owner: %s",
                                         text_to_cstring(PG_GETARG_TEXT_PP(0)),
                                         SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1))));
        }
    }
    SPI_finish();
    PG_RETURN_VOID();
}

// has_user_trigger: whether rel has a trigger that is not a constraint's.
static bool has_user_trigger(Oid rel) {
    Relation r = table_open(rel, AccessShareLock);
    bool found = false;
    for (int i = 0; r->trigdesc != NULL && i < r->trigdesc->numtriggers; i++)
        if (!r->trigdesc->triggers[i].tgisinternal) found = true;
    table_close(r, AccessShareLock);
    return found;
}

// memoria_internal.citus_follow_source(name): the rollup's own tables (its
// table; in the partial mode, the partials and changes tables) distributed
// again, co-located with its source, where they are plain tables: pg_dump
// sees a distributed table as a plain one, so after a restore they are
// until the source is distributed again.  As the extension's owner, as
// citus_distribute_rollup_table, emptied first (the new shard rollups
// recompute every row; the partial mode combines every bucket again).
// Whether it distributed one.  The fan-out calls it in a transaction of its
// own (run_command_on_coordinator): the nodes see no shard of an uncommitted
// table.  For a caller who may manage the rollup.
MEMORIA_FUNCTION(memoria_citus_follow_source) {
    if (PG_ARGISNULL(0) || !OidIsValid(get_extension_oid("citus", true))) PG_RETURN_BOOL(false);
    const char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
    Oid type = TEXTOID;
    Datum value = PG_GETARG_DATUM(0);
    MemoryContext caller = CurrentMemoryContext;
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    // Whether it may follow is citus_unplaced's to say (the source hash-
    // distributed again, by the column the rollup was made with).
    spi_exec("SELECT s.relowner, r.source::pg_catalog.text, u.follows, u.problem, "
             "       (SELECT pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) "
             "        FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = r.source), t.oid "
             "FROM memoria.citus_rollups r JOIN pg_catalog.pg_class s ON s.oid = r.source "
             "CROSS JOIN LATERAL memoria_internal.citus_unplaced(r) u "
             "LEFT JOIN pg_catalog.pg_class t ON u.follows AND t.oid IN (r.target, r.outbox) "
             "     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition q WHERE q.logicalrelid = t.oid) "
             "WHERE r.name = $1",
             1, &type, &value, NULL, true);
    leave_catalog_session(cs);
    bool isnull;
    Oid owner = SPI_processed > 0
        ? DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) : InvalidOid;
    if (!OidIsValid(owner) || !can_manage(owner))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("must be a member of the owner of rollup \"%s\"", name)));
    TupleDesc desc = SPI_tuptable->tupdesc;
    HeapTuple first = SPI_tuptable->vals[0];
    char *problem = SPI_getvalue(first, desc, 4);
    bool follows = DatumGetBool(SPI_getbinval(first, desc, 3, &isnull));
    if (problem == NULL) {  // nothing to follow
        SPI_finish();
        PG_RETURN_BOOL(false);
    }
    if (!follows)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("rollup \"%s\" cannot follow its source: %s", name, problem)));
    char *source = MemoryContextStrdup(caller, SPI_getvalue(first, desc, 2));
    char *column = MemoryContextStrdup(caller, SPI_getvalue(first, desc, 5));
    List *tables = NIL;
    MemoryContext spi = MemoryContextSwitchTo(caller);
    for (uint64 i = 0; i < SPI_processed; i++) {
        Datum t = SPI_getbinval(SPI_tuptable->vals[i], desc, 6, &isnull);
        if (!isnull) tables = lappend_oid(tables, DatumGetObjectId(t));
    }
    MemoryContextSwitchTo(spi);
    SPI_finish();
    ListCell *lc;
    foreach (lc, tables) {
        Oid t = lfirst_oid(lc);
        // Emptied first: its rows are recomputed anyway, and copying them
        // as the extension's owner would run the owner's code (a domain's
        // CHECK, an index expression) with those rights.  Nothing of the
        // owner's runs on TRUNCATE but a trigger: none is allowed here.
        if (has_user_trigger(t))
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("rollup \"%s\" cannot follow its source %s: its table %s has triggers", name,
                                   source, qualified_relation_name(t)),
                            errhint("Drop them, or drop the rollup and create it again.")));
        Oid types[3] = {REGCLASSOID, TEXTOID, TEXTOID};
        Datum values[3] = {ObjectIdGetDatum(t), CStringGetTextDatum(column), CStringGetTextDatum(source)};
        SPI_connect();
        CatalogSession distributing = enter_catalog_session();
        spi_exec(psprintf("TRUNCATE %s", qualified_relation_name(t)), 0, NULL, NULL, NULL, false);
        spi_exec("SELECT pg_catalog.create_distributed_table($1, $2, colocate_with => $3)", 3, types, values, NULL,
                 false);
        leave_catalog_session(distributing);
        SPI_finish();
    }
    PG_RETURN_BOOL(tables != NIL);
}

// memoria_internal.citus_grant_rollup_schema(role): settle_schema_grant's
// grant for one role, asked for from the coordinator's fan-out (a role that
// owns no table in memoria_rollup gets nothing).
MEMORIA_FUNCTION(memoria_citus_grant_rollup_schema) {
    Oid role = get_role_oid(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
    settle_schema_grant(role, false);
    PG_RETURN_BOOL(pg_namespace_aclcheck(get_namespace_oid("memoria_rollup", false), role, ACL_CREATE) == ACLCHECK_OK);
}

// memoria_internal.citus_refreshed(name, watermark, error): the coordinator
// has just refreshed rollup `name` (its fan-out): the time, for the
// background worker, what failed (NULL: nothing), and in the partial mode
// the watermark of the combination (the rollup table holds every change
// committed before it; never later than now; NULL, a failed refresh: the
// watermark stays).  For a caller who may manage it.
MEMORIA_FUNCTION(memoria_citus_refreshed) {
    if (PG_ARGISNULL(0)) PG_RETURN_VOID();
    Oid types[3] = {TEXTOID, TIMESTAMPTZOID, TEXTOID};
    Datum values[3] = {PG_GETARG_DATUM(0), PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1),
                       PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2)};
    char nulls[3] = {' ', PG_ARGISNULL(1) ? 'n' : ' ', PG_ARGISNULL(2) ? 'n' : ' '};
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("SELECT s.relowner FROM memoria.citus_rollups r JOIN pg_catalog.pg_class s ON s.oid = r.source "
             "WHERE r.name = $1", 1, types, values, NULL, true);
    leave_catalog_session(cs);
    bool isnull;
    if (SPI_processed != 1 ||
        !can_manage(DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull))))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("must be a member of the owner of rollup \"%s\"", text_to_cstring(PG_GETARG_TEXT_PP(0)))));
    cs = enter_catalog_session();
    spi_exec("UPDATE memoria.citus_rollups SET last_refresh_at = pg_catalog.clock_timestamp(), last_error = $3, "
             "watermark = CASE WHEN rollup_table IS NULL THEN NULL WHEN $2 IS NULL THEN watermark "
             "ELSE GREATEST(watermark, LEAST($2, pg_catalog.clock_timestamp())) END WHERE name = $1",
             3, types, values, nulls, false);
    leave_catalog_session(cs);
    SPI_finish();
    PG_RETURN_VOID();
}

// memoria_internal.citus_record_placement(name, source): rollup `name` is of
// this node's placement of the reference or citus-local table `source`
// (citus_create_placement_rollup); recorded so that dropping `source`, which
// drops the placement with CASCADE, is refused as for a distributed
// rollup's source.  Records only that fact, for a caller who may manage it.
MEMORIA_FUNCTION(memoria_citus_record_placement) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("arguments must not be NULL")));
    Rollup *r = load_rollup(text_to_cstring(PG_GETARG_TEXT_PP(0)));
    Oid types[2] = {INT4OID, REGCLASSOID};
    Datum values[2] = {Int32GetDatum(r->id), PG_GETARG_DATUM(1)};
    Oid placement_types[2] = {REGCLASSOID, OIDOID};
    Datum placement_values[2] = {PG_GETARG_DATUM(1), ObjectIdGetDatum(r->source)};
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec("SELECT 1 FROM pg_catalog.pg_dist_shard s JOIN pg_catalog.pg_dist_placement p ON p.shardid = s.shardid "
             "WHERE s.logicalrelid = $1 AND p.groupid = (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g) "
             "AND memoria_internal.citus_regclass(pg_catalog.shard_name(s.logicalrelid, s.shardid)) = $2",
             2, placement_types, placement_values, NULL, true);
    leave_catalog_session(cs);
    if (SPI_processed != 1)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("rollup \"%s\" is not of this node's placement of %s", r->name,
                               qualified_relation_name(PG_GETARG_OID(1)))));
    cs = enter_catalog_session();
    spi_exec("INSERT INTO memoria.citus_placements (rollup_id, source) VALUES ($1, $2) "
             "ON CONFLICT (rollup_id) DO UPDATE SET source = excluded.source",
             2, types, values, NULL, false);
    leave_catalog_session(cs);
    SPI_finish();
    PG_RETURN_VOID();
}

// memoria_internal.citus_as_owner(rel, sql): run sql as rel's owner, the way
// memoria runs a rollup's statements (a security-restricted operation, so
// nothing the owner made can change identity; search_path pg_catalog;
// DateStyle ISO and TimeZone UTC, so that values written as text read back
// the same; past the guard of a partial mode's rollup table); the first column of its first
// row, as text.  For a caller who may manage rel: the partial mode's
// statements on its tables, whoever refreshes (sql/src/citus.sql).
MEMORIA_FUNCTION(memoria_citus_as_owner) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("arguments must not be NULL")));
    Oid rel = PG_GETARG_OID(0);
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
    if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for relation %u", rel);
    Oid owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
    ReleaseSysCache(tup);
    if (!can_manage(owner))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("must be a member of the owner of %s", qualified_relation_name(rel))));
    const char *sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
    MemoryContext caller = CurrentMemoryContext;
    int guc_nest = NewGUCNestLevel();
    for (auto [name, value] : {std::pair<const char *, const char *>{"search_path", "pg_catalog, pg_temp"},
                               {"DateStyle", "ISO, YMD"}, {"IntervalStyle", "postgres"}, {"TimeZone", "UTC"},
                               {"row_security", "off"}, {"jit", "off"}})
        (void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    // Past the guard only for a partial mode's rollup table, which the
    // combination writes.
    Oid catalog = get_relname_relid("citus_rollups", get_namespace_oid("memoria", false));
    if (OidIsValid(catalog)) {
        Oid type = OIDOID;
        Datum value = ObjectIdGetDatum(rel);
        SPI_connect();
        CatalogSession cs = enter_catalog_session();
        spi_exec("SELECT 1 FROM memoria.citus_rollups WHERE rollup_table = $1", 1, &type, &value, NULL, true);
        leave_catalog_session(cs);
        bool rollup_table = SPI_processed > 0;
        SPI_finish();
        if (rollup_table)
            (void) set_config_option("memoria.writing_rollup", "on", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE, true,
                                     0, false);
    }
    Oid saved_user;
    int saved_context;
    GetUserIdAndSecContext(&saved_user, &saved_context);
    SetUserIdAndSecContext(owner, saved_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
    SPI_connect();
    if (SPI_execute(sql, false, 0) < 0) elog(ERROR, "could not run: %s", sql);
    char *result = NULL;
    if (SPI_tuptable != NULL && SPI_processed > 0) {
        char *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
        if (v) result = MemoryContextStrdup(caller, v);
    }
    SPI_finish();
    SetUserIdAndSecContext(saved_user, saved_context);
    AtEOXact_GUC(true, guc_nest);
    if (result == NULL) PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(result));
}

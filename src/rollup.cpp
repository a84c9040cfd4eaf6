// rollup.cpp: reading memoria.rollups, switching roles, SPI helpers and the
// per-rollup advisory lock.
#include "rollup.hpp"

namespace memoria {

Oid extension_owner(void) {
    Oid nsp = get_namespace_oid("memoria", false);
    HeapTuple tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
    if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for schema memoria");
    Oid owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
    ReleaseSysCache(tup);
    return owner;
}

SavedUser become_user(Oid role) {
    SavedUser saved;
    GetUserIdAndSecContext(&saved.user, &saved.sec_context);
    SetUserIdAndSecContext(role, saved.sec_context | SECURITY_LOCAL_USERID_CHANGE);
    return saved;
}

void restore_user(SavedUser saved) {
    SetUserIdAndSecContext(saved.user, saved.sec_context);
}

// enter_rollup_session: become the rollup's owner, in a security-restricted
// operation, with its search_path and time zone (undone by leave, or by the
// abort an ERROR causes).
RollupSession enter_rollup_session(const Rollup *r) {
    RollupSession s;
    s.guc_nest = NewGUCNestLevel();
    (void) set_config_option("search_path", r->search_path, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                             false);
    (void) set_config_option("TimeZone", r->time_zone, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    // Refresh statements are short and planned afresh each time: JIT would
    // only add its compile time.
    (void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    GetUserIdAndSecContext(&s.user.user, &s.user.sec_context);
    SetUserIdAndSecContext(r->owner, s.user.sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
    return s;
}

void leave_rollup_session(RollupSession s) {
    restore_user(s.user);
    AtEOXact_GUC(true, s.guc_nest);
}

int spi_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, bool read_only) {
    elog(DEBUG2, "memoria: %s", sql);
    int rc = SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, 0);
    if (rc < 0) elog(ERROR, "SPI_execute_with_args failed (%d): %s", rc, sql);
    return rc;
}

int64 spi_int64(int col) {
    if (SPI_processed == 0) return 0;
    bool isnull;
    Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
    return isnull ? 0 : DatumGetInt64(d);
}

char *qualified_relation_name(Oid relid) {
    char *rel = get_rel_name(relid);
    if (rel == NULL)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("relation with OID %u does not exist", relid)));
    return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), rel);
}

char *column_name(Oid relid, AttrNumber attnum) {
    return (char *) quote_identifier(get_attname(relid, attnum, false));
}

bool can_manage(Oid owner) {
    return has_privs_of_role(GetUserId(), owner);
}

void check_can_manage(const Rollup *r) {
    if (!can_manage(r->owner))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("permission denied for rollup \"%s\"", r->name),
                        errhint("Only the rollup's owner (a member of role \"%s\") or a superuser may do this.",
                                GetUserNameFromId(r->owner, false))));
}

static AttrNumber *int2_array(Datum d, int *n) {
    ArrayType *a = DatumGetArrayTypeP(d);
    Datum *elems;
    bool *nulls;
    deconstruct_array(a, INT2OID, 2, true, TYPALIGN_SHORT, &elems, &nulls, n);
    AttrNumber *out = (AttrNumber *) palloc((*n + 1) * sizeof(AttrNumber));
    for (int i = 0; i < *n; i++) out[i] = DatumGetInt16(elems[i]);
    return out;
}

static char **text_array(Datum d, int *n) {
    ArrayType *a = DatumGetArrayTypeP(d);
    Datum *elems;
    bool *nulls;
    deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
    char **out = (char **) palloc((*n + 1) * sizeof(char *));
    for (int i = 0; i < *n; i++) out[i] = TextDatumGetCString(elems[i]);
    return out;
}

static const char *ROLLUP_COLUMNS =
    "SELECT id, name, owner, source, target, dirty_log, time_attnum, time_type, dimension_attnums, "
    "scope_attnums, measures, measure_names, bucket, time_zone, filter, search_path, "
    "CASE WHEN invalidation = 'updated_at' THEN updated_at_attnum ELSE 0 END, safety_lag FROM memoria.rollups ";

// rollup_from_row: decode row i of the current SPI result into the caller's context.
static Rollup *rollup_from_row(uint64 i, MemoryContext into) {
    HeapTuple row = SPI_tuptable->vals[i];
    TupleDesc desc = SPI_tuptable->tupdesc;
    MemoryContext old = MemoryContextSwitchTo(into);
    Rollup *r = (Rollup *) palloc0(sizeof(Rollup));
    bool isnull;
    r->id = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
    r->name = TextDatumGetCString(SPI_getbinval(row, desc, 2, &isnull));
    r->owner = DatumGetObjectId(SPI_getbinval(row, desc, 3, &isnull));
    r->source = DatumGetObjectId(SPI_getbinval(row, desc, 4, &isnull));
    r->target = DatumGetObjectId(SPI_getbinval(row, desc, 5, &isnull));
    r->dirty_log = DatumGetObjectId(SPI_getbinval(row, desc, 6, &isnull));
    r->time_attnum = DatumGetInt16(SPI_getbinval(row, desc, 7, &isnull));
    r->time_type = DatumGetObjectId(SPI_getbinval(row, desc, 8, &isnull));
    time_kind_of(r->time_type, &r->kind);
    r->dim_attnums = int2_array(SPI_getbinval(row, desc, 9, &isnull), &r->ndims);
    r->scope_attnums = int2_array(SPI_getbinval(row, desc, 10, &isnull), &r->nscope);
    r->measures = text_array(SPI_getbinval(row, desc, 11, &isnull), &r->nmeasures);
    int n;
    r->measure_names = text_array(SPI_getbinval(row, desc, 12, &isnull), &n);
    r->bucket = *DatumGetIntervalP(SPI_getbinval(row, desc, 13, &isnull));
    r->width_usecs = (int64) r->bucket.day * USECS_PER_DAY + r->bucket.time;
    r->time_zone = TextDatumGetCString(SPI_getbinval(row, desc, 14, &isnull));
    Datum f = SPI_getbinval(row, desc, 15, &isnull);
    r->filter = isnull ? NULL : TextDatumGetCString(f);
    r->search_path = TextDatumGetCString(SPI_getbinval(row, desc, 16, &isnull));
    r->updated_at_attnum = DatumGetInt16(SPI_getbinval(row, desc, 17, &isnull));
    r->safety_lag = *DatumGetIntervalP(SPI_getbinval(row, desc, 18, &isnull));
    MemoryContextSwitchTo(old);
    return r;
}

Rollup *load_rollup(const char *name) {
    MemoryContext caller = CurrentMemoryContext;
    SPI_connect();
    SavedUser saved = become_user(extension_owner());
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfo(&sql, "%s WHERE name = $1", ROLLUP_COLUMNS);
    Oid types[1] = {TEXTOID};
    Datum values[1] = {CStringGetTextDatum(name)};
    spi_exec(sql.data, 1, types, values, NULL, true);
    restore_user(saved);
    if (SPI_processed == 0)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("rollup \"%s\" does not exist", name),
                        errhint("See SELECT rollup FROM memoria.status for the rollups you can see.")));
    Rollup *r = rollup_from_row(0, caller);
    SPI_finish();
    check_can_manage(r);
    return r;
}

List *load_rollups(void) {
    MemoryContext caller = CurrentMemoryContext;
    SPI_connect();
    SavedUser saved = become_user(extension_owner());
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfo(&sql, "%s ORDER BY name", ROLLUP_COLUMNS);
    spi_exec(sql.data, 0, NULL, NULL, NULL, true);
    restore_user(saved);
    List *out = NIL;
    for (uint64 i = 0; i < SPI_processed; i++) {
        Rollup *r = rollup_from_row(i, caller);
        if (!can_manage(r->owner)) continue;
        MemoryContext old = MemoryContextSwitchTo(caller);
        out = lappend(out, r);
        MemoryContextSwitchTo(old);
    }
    SPI_finish();
    return out;
}

bool catalog_has_scan_mark(void) {
    Oid state = get_relname_relid("rollup_state", get_namespace_oid("memoria", false));
    return OidIsValid(state) && get_attnum(state, "scanned_through") != InvalidAttrNumber;
}

static void set_lock_tag(LOCKTAG *tag, int32 id) {
    // Same tag as pg_advisory_xact_lock(MEMORIA_LOCK_CLASS, id).
    SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) MEMORIA_LOCK_CLASS, (uint32) id, 2);
}

bool try_lock_rollup(int32 id) {
    LOCKTAG tag;
    set_lock_tag(&tag, id);
    return LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL;
}

void lock_rollup(int32 id) {
    LOCKTAG tag;
    set_lock_tag(&tag, id);
    (void) LockAcquire(&tag, ExclusiveLock, false, false);
}

}  // namespace memoria

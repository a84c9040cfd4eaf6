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

bool catalog_has_column(const char *table, const char *column) {
    Oid rel = get_relname_relid(table, get_namespace_oid("memoria", false));
    return OidIsValid(rel) && get_attnum(rel, column) != InvalidAttrNumber;
}

CatalogSession enter_catalog_session(void) {
    CatalogSession s;
    s.guc_nest = NewGUCNestLevel();
    (void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true,
                             0, false);
    GetUserIdAndSecContext(&s.user, &s.sec_context);
    SetUserIdAndSecContext(extension_owner(), s.sec_context | SECURITY_LOCAL_USERID_CHANGE);
    return s;
}

void leave_catalog_session(CatalogSession s) {
    SetUserIdAndSecContext(s.user, s.sec_context);
    AtEOXact_GUC(true, s.guc_nest);
}

const char *const PARSE_SETTINGS[] = {"DateStyle",      "IntervalStyle",         "standard_conforming_strings",
                                      "transform_null_equals", "array_nulls",   "default_text_search_config",
                                      "extra_float_digits",    "bytea_output",  "xmloption", "xmlbinary"};
const int NUM_PARSE_SETTINGS = lengthof(PARSE_SETTINGS);

// Settings for rollups made before they were recorded: PostgreSQL's defaults.
static const char *const DEFAULT_SETTINGS[] = {"DateStyle=ISO, MDY", "IntervalStyle=postgres",
                                               "standard_conforming_strings=on", "transform_null_equals=off",
                                               "array_nulls=on", "extra_float_digits=1", "bytea_output=hex",
                                               "xmloption=content", "xmlbinary=base64"};

static void set_session_option(const char *name, const char *value) {
    (void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
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
    set_session_option("search_path", r->search_path);
    set_session_option("TimeZone", r->time_zone);
    // The expressions mean what they meant to their creator, whoever runs them.
    if (r->nsettings == 0)
        for (const char *setting : DEFAULT_SETTINGS) {
            const char *eq = strchr(setting, '=');
            set_session_option(pnstrdup(setting, eq - setting), eq + 1);
        }
    for (int i = 0; i < r->nsettings; i++) {
        const char *eq = strchr(r->settings[i], '=');
        if (eq != NULL) set_session_option(pnstrdup(r->settings[i], eq - r->settings[i]), eq + 1);
    }
    // Never a session's view of the source: where row security would
    // filter the owner's rows, the statement fails instead.
    set_session_option("row_security", "off");
    // Refresh statements are short and planned afresh each time: JIT would
    // only add its compile time.
    set_session_option("jit", "off");
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

void record_dependency(Oid classid, Oid objid, Oid refclassid, Oid refobjid, DependencyType type) {
    ObjectAddress dep = {classid, objid, 0}, ref = {refclassid, refobjid, 0};
    recordDependencyOn(&dep, &ref, type);
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

// rollup_query: the catalog columns rollup_from_row decodes, then `where`.
static char *rollup_query(const char *where) {
    return psprintf("SELECT id, name, owner, source, target, dirty_log, time_attnum, time_type, dimension_attnums, "
                    "scope_attnums, measures, measure_names, bucket, time_zone, filter, search_path, "
                    "CASE WHEN invalidation = 'updated_at' THEN updated_at_attnum ELSE 0 END, safety_lag, %s "
                    "FROM memoria.rollups %s",
                    catalog_has_column("rollups", "settings") ? "settings" : "NULL::text[]", where);
}

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
    Datum settings = SPI_getbinval(row, desc, 19, &isnull);
    if (!isnull) r->settings = text_array(settings, &r->nsettings);
    MemoryContextSwitchTo(old);
    return r;
}

// read_one_rollup: the rollup a one-parameter catalog query finds, or NULL.
static Rollup *read_one_rollup(const char *where, Oid type, Datum value) {
    MemoryContext caller = CurrentMemoryContext;
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    // Not read-only: a fresh snapshot sees rows this transaction just wrote.
    spi_exec(rollup_query(where), 1, &type, &value, NULL, false);
    leave_catalog_session(cs);
    Rollup *r = SPI_processed == 0 ? NULL : rollup_from_row(0, caller);
    SPI_finish();
    return r;
}

Rollup *load_rollup(const char *name) {
    Rollup *r = read_one_rollup("WHERE name = $1", TEXTOID, CStringGetTextDatum(name));
    if (r == NULL)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("rollup \"%s\" does not exist", name),
                        errhint("See SELECT rollup FROM memoria.status for the rollups you can see.")));
    check_can_manage(r);
    return r;
}

Rollup *find_rollup_by_id(int32 id) {
    return read_one_rollup("WHERE id = $1", INT4OID, Int32GetDatum(id));
}

List *load_rollups(void) {
    MemoryContext caller = CurrentMemoryContext;
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec(rollup_query("ORDER BY name"), 0, NULL, NULL, NULL, true);
    leave_catalog_session(cs);
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

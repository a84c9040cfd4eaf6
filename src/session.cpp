// session.cpp: role switches, the catalog and rollup sessions, the advisory
// lock and the small helpers every file uses (see session.hpp).
#include "catalog.hpp"
#include "session.hpp"

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

static void set_session_option(const char *name, const char *value) {
    (void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

CatalogSession enter_catalog_session(void) {
    return enter_catalog_session_as(extension_owner());
}

CatalogSession enter_catalog_session_as(Oid role) {
    CatalogSession s;
    s.guc_nest = NewGUCNestLevel();
    set_session_option("search_path", "pg_catalog, pg_temp");
    s.user = become_user(role);
    return s;
}

void run_as_extension(const char *sql) {
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec(sql, 0, NULL, NULL, NULL, false);
    leave_catalog_session(cs);
    SPI_finish();
    CommandCounterIncrement();
}

void leave_catalog_session(CatalogSession s) {
    restore_user(s.user);
    AtEOXact_GUC(true, s.guc_nest);
}

// The settings recorded with a rollup, and the values rollups made before
// they were recorded get (PostgreSQL's defaults; NULL: leave the session's).
static const struct {
    const char *name, *old_default;
} SETTINGS[] = {
    {"DateStyle", "ISO, MDY"},       {"IntervalStyle", "postgres"},    {"standard_conforming_strings", "on"},
    {"transform_null_equals", "off"}, {"array_nulls", "on"},            {"default_text_search_config", NULL},
    {"extra_float_digits", "1"},      {"bytea_output", "hex"},          {"xmloption", "content"},
    {"xmlbinary", "base64"},          {"lc_monetary", "C"},             {"lc_numeric", "C"},
    {"lc_time", "C"},
};
const int NUM_PARSE_SETTINGS = lengthof(SETTINGS);

const char *parse_setting_name(int i) {
    return SETTINGS[i].name;
}

static void apply_setting(const char *setting) {
    const char *eq = strchr(setting, '=');
    if (eq != NULL) set_session_option(pnstrdup(setting, eq - setting), eq + 1);
}

RollupSession enter_rollup_session(const Rollup *r) {
    RollupSession s;
    s.guc_nest = NewGUCNestLevel();
    set_session_option("search_path", r->search_path);
    set_session_option("TimeZone", r->time_zone);
    // The expressions mean what they meant to their creator, whoever runs them.
    if (r->nsettings == 0)
        for (const auto &setting : SETTINGS)
            if (setting.old_default) set_session_option(setting.name, setting.old_default);
    for (int i = 0; i < r->nsettings; i++) apply_setting(r->settings[i]);
    // Never a session's view of the source: where row security would
    // filter the owner's rows, the statement fails instead.
    set_session_option("row_security", "off");
    // Refresh statements are short and planned afresh each time: JIT would
    // only add its compile time.
    set_session_option("jit", "off");
    // Lets memoria's statements pass the rollup table's guard trigger.
    (void) set_config_option("memoria.writing_rollup", "on", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                             false);
    GetUserIdAndSecContext(&s.user.user, &s.user.sec_context);
    SetUserIdAndSecContext(r->owner, s.user.sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
    return s;
}

void leave_rollup_session(RollupSession s) {
    restore_user(s.user);
    AtEOXact_GUC(true, s.guc_nest);
}

ErrorData *try_in_subtransaction(void (*body)(void *), void *arg, bool keep) {
    MemoryContext caller = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;
    ErrorData *volatile error = NULL;  // set after a longjmp
    BeginInternalSubTransaction(NULL);
    MemoryContextSwitchTo(caller);
    PG_TRY();
    {
        body(arg);
        if (keep) ReleaseCurrentSubTransaction();
        else RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(caller);
        CurrentResourceOwner = owner;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller);
        error = CopyErrorData();
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(caller);
        CurrentResourceOwner = owner;
        if (error->sqlerrcode == ERRCODE_QUERY_CANCELED) ReThrowError(error);
    }
    PG_END_TRY();
    return error;
}

bool can_manage(Oid owner) {
    return has_privs_of_role(GetUserId(), owner);
}

bool can_observe(Oid owner) {
    return can_manage(owner) || has_privs_of_role(GetUserId(), ROLE_PG_MONITOR);
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

bool spi_bool(int col) {
    if (SPI_processed == 0) return false;
    bool isnull;
    Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
    return !isnull && DatumGetBool(d);
}

void record_dependency(Oid classid, Oid objid, Oid refclassid, Oid refobjid, DependencyType type) {
    ObjectAddress dep = {classid, objid, 0}, ref = {refclassid, refobjid, 0};
    recordDependencyOn(&dep, &ref, type);
}

const char *internal_function(const char *name) {
    if (OidIsValid(get_namespace_oid("memoria_internal", true))) return psprintf("memoria_internal.%s", name);
    return psprintf("memoria._%s", name);
}

char *qualified_relation_name(Oid relid) {
    char *rel = get_rel_name(relid);
    if (rel == NULL)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("relation with OID %u does not exist", relid)));
    return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), rel);
}

bool column_not_null(Oid rel, AttrNumber attnum) {
    HeapTuple tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(rel), Int16GetDatum(attnum));
    if (!HeapTupleIsValid(tup)) return false;
    bool not_null = ((Form_pg_attribute) GETSTRUCT(tup))->attnotnull;
    ReleaseSysCache(tup);
    return not_null;
}

char *column_name(Oid relid, AttrNumber attnum) {
    return (char *) quote_identifier(get_attname(relid, attnum, false));
}

char *column_type_sql(Oid rel, AttrNumber a, bool base_type) {
    HeapTuple tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(rel), Int16GetDatum(a));
    if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for attribute %d of %u", a, rel);
    Form_pg_attribute att = (Form_pg_attribute) GETSTRUCT(tup);
    Oid type = att->atttypid;
    int32 typmod = att->atttypmod;
    if (base_type) type = getBaseTypeAndTypmod(type, &typmod);
    char *t = format_type_with_typemod(type, typmod);
    if (OidIsValid(att->attcollation) && att->attcollation != get_typcollation(type))
        t = psprintf("%s COLLATE %s", t, generate_collation_name(att->attcollation));
    ReleaseSysCache(tup);
    return t;
}

Datum oid_array_datum(List *oids) {
    int n = list_length(oids);
    Datum *d = (Datum *) palloc((n + 1) * sizeof(Datum));
    for (int i = 0; i < n; i++) d[i] = ObjectIdGetDatum(list_nth_oid(oids, i));
    return PointerGetDatum(construct_array(d, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

Datum int2_array_datum(List *ints) {
    int n = list_length(ints);
    Datum *d = (Datum *) palloc((n + 1) * sizeof(Datum));
    for (int i = 0; i < n; i++) d[i] = Int16GetDatum((int16) list_nth_int(ints, i));
    return PointerGetDatum(construct_array(d, n, INT2OID, 2, true, TYPALIGN_SHORT));
}

Datum text_array_datum(List *strings) {
    int n = list_length(strings);
    Datum *d = (Datum *) palloc((n + 1) * sizeof(Datum));
    for (int i = 0; i < n; i++) d[i] = CStringGetTextDatum((const char *) list_nth(strings, i));
    return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

AttrNumber *int2_array(Datum d, int *n) {
    Datum *elems;
    bool *nulls;
    deconstruct_array(DatumGetArrayTypeP(d), INT2OID, 2, true, TYPALIGN_SHORT, &elems, &nulls, n);
    AttrNumber *out = (AttrNumber *) palloc((*n + 1) * sizeof(AttrNumber));
    for (int i = 0; i < *n; i++) out[i] = DatumGetInt16(elems[i]);
    return out;
}

char **text_array(Datum d, int *n) {
    Datum *elems;
    bool *nulls;
    deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
    char **out = (char **) palloc((*n + 1) * sizeof(char *));
    for (int i = 0; i < *n; i++) out[i] = TextDatumGetCString(elems[i]);
    return out;
}

static void set_lock_tag(LOCKTAG *tag, int32 id) {
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

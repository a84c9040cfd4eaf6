// catalog.cpp: every read and write of memoria.rollups and
// memoria.rollup_state (see catalog.hpp).
#include "citus.hpp"
#include "catalog.hpp"
#include "view_source.hpp"

namespace memoria {

// The columns of memoria.rollups a Rollup holds, in one place: the SELECT
// that reads a Rollup and the INSERT that writes one are built from it.
enum RollupColumn {
    COL_ID, COL_NAME, COL_OWNER, COL_SOURCE, COL_TARGET, COL_DIRTY_LOG, COL_TIME_ATTNUM, COL_TIME_TYPE,
    COL_DIMENSIONS, COL_SCOPE, COL_MEASURES, COL_MEASURE_NAMES, COL_BUCKET, COL_TIME_ZONE, COL_FILTER,
    COL_INVALIDATION, COL_UPDATED_AT, COL_SAFETY_LAG, COL_SEARCH_PATH, COL_SETTINGS, COL_FREEZE_AFTER,
    COL_LINK_LOG, COL_DIMENSION_EXPRS, COL_DELTA_LOG, NUM_ROLLUP_COLUMNS
};
// Columns added by later versions: read as NULL (and not written) until
// ALTER EXTENSION UPDATE.
static const struct {
    RollupColumn column;
    const char *table;
    const char *since;
} LATER_COLUMNS[] = {{COL_SETTINGS, "rollups", "settings"}, {COL_FREEZE_AFTER, "rollups", "freeze_after"},
                      {COL_LINK_LOG, "rollups", "link_log"},
                      {COL_DIMENSION_EXPRS, "rollups", "dimension_exprs"},
                      {COL_DELTA_LOG, "rollups", "delta_log"}};
static const struct {
    const char *name;
    Oid type;
} ROLLUP_COLUMNS[NUM_ROLLUP_COLUMNS] = {
    {"id", INT4OID},           {"name", TEXTOID},          {"owner", REGROLEOID},
    {"source", REGCLASSOID},   {"target", REGCLASSOID},    {"dirty_log", REGCLASSOID},
    {"time_attnum", INT2OID},  {"time_type", REGTYPEOID},  {"dimension_attnums", INT2ARRAYOID},
    {"scope_attnums", INT2ARRAYOID}, {"measures", TEXTARRAYOID}, {"measure_names", TEXTARRAYOID},
    {"bucket", INTERVALOID},   {"time_zone", TEXTOID},     {"filter", TEXTOID},
    {"invalidation", TEXTOID}, {"updated_at_attnum", INT2OID}, {"safety_lag", INTERVALOID},
    {"search_path", TEXTOID},  {"settings", TEXTARRAYOID}, {"freeze_after", INTERVALOID},
    {"link_log", REGCLASSOID}, {"dimension_exprs", TEXTARRAYOID}, {"delta_log", REGCLASSOID},
};

bool catalog_has_column(const char *table, const char *column) {
    Oid rel = get_relname_relid(table, get_namespace_oid("memoria", false));
    return OidIsValid(rel) && get_attnum(rel, column) != InvalidAttrNumber;
}

// column_present: whether this catalog has the column (see LATER_COLUMNS).
static bool column_present(int c) {
    for (const auto &later : LATER_COLUMNS)
        if (later.column == c) return catalog_has_column(later.table, later.since);
    return true;
}

char *this_database_mark(void) {
    return psprintf(UINT64_FORMAT ":%u", GetSystemIdentifier(), MyDatabaseId);
}

// run_catalog: one catalog statement in the catalog session (the caller is
// connected to SPI).  Not read-only: a fresh snapshot sees what this
// transaction just wrote.
static void run_catalog(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls) {
    CatalogSession cs = enter_catalog_session();
    spi_exec(sql, nargs, types, values, nulls, false);
    leave_catalog_session(cs);
}

// rollup_select: the SELECT of Rollups; parameter $mark_param is this
// database's mark (this_database_mark).
static char *rollup_select(const char *where, int mark_param) {
    StringInfoData s;
    initStringInfo(&s);
    appendStringInfoString(&s, "SELECT ");
    for (int c = 0; c < NUM_ROLLUP_COLUMNS; c++) {
        if (c > 0) appendStringInfoString(&s, ", ");
        if (!column_present(c))
            appendStringInfo(&s, "NULL::%s", format_type_be(ROLLUP_COLUMNS[c].type));
        else
            appendStringInfoString(&s, ROLLUP_COLUMNS[c].name);
    }
    // Restored elsewhere and not adopted since (NULL before 0.4.0: never).
    if (catalog_has_column("rollup_state", "recorded_in"))
        // (No state row yet: a parallel pg_restore is loading it.)
        appendStringInfo(&s, ", coalesce((SELECT recorded_in = $%d FROM memoria.rollup_state "
                             "WHERE rollup_id = id), false) IS NOT TRUE", mark_param);
    else
        appendStringInfoString(&s, ", false");
    appendStringInfo(&s, " FROM memoria.rollups %s", where);
    return s.data;
}

// live_columns: the attribute numbers of rel's live columns, in order (the
// first n; 0 for any missing).
static AttrNumber *live_columns(Oid rel, int n) {
    AttrNumber *out = (AttrNumber *) palloc0((n + 1) * sizeof(AttrNumber));
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
    if (!HeapTupleIsValid(tup)) return out;
    int natts = ((Form_pg_class) GETSTRUCT(tup))->relnatts;
    ReleaseSysCache(tup);
    int k = 0;
    for (AttrNumber a = 1; a <= natts && k < n; a++) {
        HeapTuple att = SearchSysCache2(ATTNUM, ObjectIdGetDatum(rel), Int16GetDatum(a));
        if (!HeapTupleIsValid(att)) continue;
        if (!((Form_pg_attribute) GETSTRUCT(att))->attisdropped) out[k++] = a;
        ReleaseSysCache(att);
    }
    return out;
}

// nullable_text_array: a text[] with NULL elements as n strings (NULL where
// the element is); and back.
static char **nullable_text_array(Datum d, int n) {
    ArrayType *a = DatumGetArrayTypeP(d);
    Datum *elems;
    bool *nulls;
    int count;
    deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &count);
    char **out = (char **) palloc0((n + 1) * sizeof(char *));
    for (int i = 0; i < count && i < n; i++) out[i] = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
    return out;
}

static Datum nullable_text_array_datum(char **s, int n) {
    Datum *d = (Datum *) palloc((n + 1) * sizeof(Datum));
    bool *nulls = (bool *) palloc((n + 1) * sizeof(bool));
    for (int i = 0; i < n; i++) {
        nulls[i] = s[i] == NULL;
        d[i] = s[i] ? CStringGetTextDatum(s[i]) : (Datum) 0;
    }
    int dims[1] = {n}, lbs[1] = {1};
    return PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
}

// rollup_from_row: row i of the last SPI result, decoded into `into`.
// rollup_from_values: a Rollup in `into` from a catalog row's columns (v,
// null: in ROLLUP_COLUMNS order) and whether it was restored elsewhere.
static Rollup *rollup_from_values(const Datum *v, const bool *null, bool restored, MemoryContext into) {
    MemoryContext old = MemoryContextSwitchTo(into);
    Rollup *r = (Rollup *) palloc0(sizeof(Rollup));
    r->id = DatumGetInt32(v[COL_ID]);
    r->name = TextDatumGetCString(v[COL_NAME]);
    r->granted_owner = DatumGetObjectId(v[COL_OWNER]);
    r->source = DatumGetObjectId(v[COL_SOURCE]);
    // A rollup belongs to whoever owns its source now (ALTER TABLE ... OWNER,
    // REASSIGN OWNED): adopt.cpp moves the grants along.
    HeapTuple src = SearchSysCache1(RELOID, ObjectIdGetDatum(r->source));
    r->owner = HeapTupleIsValid(src) ? ((Form_pg_class) GETSTRUCT(src))->relowner : r->granted_owner;
    if (HeapTupleIsValid(src)) ReleaseSysCache(src);
    r->target = DatumGetObjectId(v[COL_TARGET]);
    r->dirty_log = DatumGetObjectId(v[COL_DIRTY_LOG]);
    r->time_attnum = DatumGetInt16(v[COL_TIME_ATTNUM]);
    r->time_type = DatumGetObjectId(v[COL_TIME_TYPE]);
    time_kind_of(r->time_type, &r->kind);
    r->dim_attnums = int2_array(v[COL_DIMENSIONS], &r->ndims);
    r->scope_attnums = int2_array(v[COL_SCOPE], &r->nscope);
    r->measures = text_array(v[COL_MEASURES], &r->nmeasures);
    int n;
    r->measure_names = text_array(v[COL_MEASURE_NAMES], &n);
    r->bucket = *DatumGetIntervalP(v[COL_BUCKET]);
    r->width_usecs = bucket_width_code(&r->bucket);
    r->time_zone = TextDatumGetCString(v[COL_TIME_ZONE]);
    r->filter = null[COL_FILTER] ? NULL : TextDatumGetCString(v[COL_FILTER]);
    bool updated_at_mode = strcmp(TextDatumGetCString(v[COL_INVALIDATION]), "updated_at") == 0;
    r->updated_at_attnum = updated_at_mode && !null[COL_UPDATED_AT] ? DatumGetInt16(v[COL_UPDATED_AT]) : 0;
    r->safety_lag = *DatumGetIntervalP(v[COL_SAFETY_LAG]);
    r->search_path = TextDatumGetCString(v[COL_SEARCH_PATH]);
    if (!null[COL_SETTINGS]) r->settings = text_array(v[COL_SETTINGS], &r->nsettings);
    r->has_freeze = !null[COL_FREEZE_AFTER];
    if (r->has_freeze) r->freeze_after = *DatumGetIntervalP(v[COL_FREEZE_AFTER]);
    r->target_attnums = live_columns(r->target, 1 + r->ndims + r->nmeasures);
    r->link_log = null[COL_LINK_LOG] ? InvalidOid : DatumGetObjectId(v[COL_LINK_LOG]);
    r->delta_log = null[COL_DELTA_LOG] ? InvalidOid : DatumGetObjectId(v[COL_DELTA_LOG]);
    r->dim_exprs = null[COL_DIMENSION_EXPRS] ? NULL : nullable_text_array(v[COL_DIMENSION_EXPRS], r->ndims);
    char *problem;
    attach_view_join(r, &problem);  // (a view that no longer fits: the DDL hooks say why)
    r->restored = restored;
    MemoryContextSwitchTo(old);
    return r;
}

static Rollup *rollup_from_row(uint64 i, MemoryContext into) {
    HeapTuple row = SPI_tuptable->vals[i];
    TupleDesc desc = SPI_tuptable->tupdesc;
    Datum v[NUM_ROLLUP_COLUMNS];
    bool null[NUM_ROLLUP_COLUMNS];
    for (int c = 0; c < NUM_ROLLUP_COLUMNS; c++) v[c] = SPI_getbinval(row, desc, c + 1, &null[c]);
    bool isnull;
    bool restored = DatumGetBool(SPI_getbinval(row, desc, NUM_ROLLUP_COLUMNS + 1, &isnull));
    return rollup_from_values(v, null, restored, into);
}

// catalog_row: the row of a memoria catalog table whose int4 first column
// (its primary key, index <table>_pkey) is id, deformed into values/nulls
// (the table's natts of them), read with snapshot; false if none.  The
// caller reads the values before end_catalog_row.
struct CatalogRow {
    Relation rel;
    SysScanDesc scan;
    Datum *values;
    bool *nulls;
};
static bool catalog_row(const char *table, int32 id, Snapshot snapshot, CatalogRow *row) {
    Oid nsp = get_namespace_oid("memoria", false);
    Oid index = get_relname_relid(psprintf("%s_pkey", table), nsp);
    row->rel = table_open(get_relname_relid(table, nsp), AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(id));
    row->scan = systable_beginscan(row->rel, index, OidIsValid(index), snapshot, 1, &key);
    HeapTuple tup = systable_getnext(row->scan);
    if (!HeapTupleIsValid(tup)) return false;
    TupleDesc desc = RelationGetDescr(row->rel);
    row->values = (Datum *) palloc(desc->natts * sizeof(Datum));
    row->nulls = (bool *) palloc(desc->natts * sizeof(bool));
    heap_deform_tuple(tup, desc, row->values, row->nulls);
    return true;
}
static void end_catalog_row(CatalogRow *row) {
    systable_endscan(row->scan);
    table_close(row->rel, AccessShareLock);
}

Rollup *read_rollup_for_capture(int32 id) {
    // (A catalog older than the library's: the general path.)
    Oid nsp = get_namespace_oid("memoria", false);
    if (!OidIsValid(get_relname_relid("rollups_pkey", nsp)) || !OidIsValid(get_relname_relid("rollup_state_pkey", nsp)))
        return find_rollup_by_id(id);
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    CatalogRow row;
    Rollup *r = NULL;
    if (catalog_row("rollups", id, snapshot, &row)) {
        TupleDesc desc = RelationGetDescr(row.rel);
        Datum v[NUM_ROLLUP_COLUMNS];
        bool null[NUM_ROLLUP_COLUMNS];
        for (int c = 0; c < NUM_ROLLUP_COLUMNS; c++) {
            AttrNumber a = column_present(c) ? get_attnum(RelationGetRelid(row.rel), ROLLUP_COLUMNS[c].name)
                                             : InvalidAttrNumber;
            null[c] = a == InvalidAttrNumber || a > desc->natts || row.nulls[a - 1];
            v[c] = null[c] ? (Datum) 0 : row.values[a - 1];
        }
        // Restored elsewhere and not adopted since: as rollup_select says.
        bool restored = false;
        if (catalog_has_column("rollup_state", "recorded_in")) {
            CatalogRow state;
            restored = true;
            if (catalog_row("rollup_state", id, snapshot, &state)) {
                AttrNumber a = get_attnum(RelationGetRelid(state.rel), "recorded_in");
                if (!state.nulls[a - 1])
                    restored = strcmp(TextDatumGetCString(state.values[a - 1]), this_database_mark()) != 0;
            }
            end_catalog_row(&state);
        }
        r = rollup_from_values(v, null, restored, CurrentMemoryContext);
    }
    end_catalog_row(&row);
    UnregisterSnapshot(snapshot);
    return r;
}

// read_rollups: the rollups a catalog query finds, in `into`.
static List *read_rollups(const char *where, int nargs, Oid *types, Datum *values, MemoryContext into) {
    // The statement's last parameter: this database's mark (restored rollups).
    Oid all_types[2];
    Datum all_values[2];
    for (int i = 0; i < nargs; i++) {
        all_types[i] = types[i];
        all_values[i] = values[i];
    }
    all_types[nargs] = TEXTOID;
    all_values[nargs] = CStringGetTextDatum(this_database_mark());
    SPI_connect();
    run_catalog(rollup_select(where, nargs + 1), nargs + 1, all_types, all_values, NULL);
    List *out = NIL;
    for (uint64 i = 0; i < SPI_processed; i++) {
        Rollup *r = rollup_from_row(i, into);
        MemoryContext old = MemoryContextSwitchTo(into);
        out = lappend(out, r);
        MemoryContextSwitchTo(old);
    }
    SPI_finish();
    return out;
}

void check_can_manage(const Rollup *r) {
    if (!can_manage(r->owner))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("permission denied for rollup \"%s\"", r->name),
                        errhint("Only the rollup's owner (a member of role \"%s\") or a superuser may do this.",
                                GetUserNameFromId(r->owner, false))));
}

Rollup *load_rollup(const char *name) {
    Oid type = TEXTOID;
    Datum value = CStringGetTextDatum(name);
    List *found = read_rollups("WHERE name = $1", 1, &type, &value, CurrentMemoryContext);
    if (found == NIL)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("rollup \"%s\" does not exist", name),
                        errhint("See SELECT rollup FROM memoria.status for the rollups you can see.")));
    Rollup *r = (Rollup *) linitial(found);
    check_can_manage(r);
    return r;
}

Rollup *find_rollup_by_id(int32 id) {
    Oid type = INT4OID;
    Datum value = Int32GetDatum(id);
    List *found = read_rollups("WHERE id = $1", 1, &type, &value, CurrentMemoryContext);
    return found == NIL ? NULL : (Rollup *) linitial(found);
}

int rollup_level(const Rollup *r, List *all) {
    int level = 0;
    // (A chain cannot loop: a rollup's source exists before it.  Bounded all
    // the same.)
    for (int hops = 0; hops < list_length(all); hops++) {
        const Rollup *parent = NULL;
        ListCell *lc;
        foreach (lc, all)
            if (((const Rollup *) lfirst(lc))->target == r->source) parent = (const Rollup *) lfirst(lc);
        if (parent == NULL) break;
        level++;
        r = parent;
    }
    return level;
}

List *dependent_rollups(const Rollup *r) {
    List *out = NIL;
    ListCell *lc;
    foreach (lc, all_rollups())
        if (((const Rollup *) lfirst(lc))->source == r->target) out = lappend(out, lfirst(lc));
    return out;
}

static List *rollups_by_level = NIL;  // (list_sort's comparator has no argument)
static int by_level_then_name(const ListCell *a, const ListCell *b) {
    const Rollup *x = (const Rollup *) lfirst(a), *y = (const Rollup *) lfirst(b);
    int lx = rollup_level(x, rollups_by_level), ly = rollup_level(y, rollups_by_level);
    if (lx != ly) return lx < ly ? -1 : 1;
    return strcmp(x->name, y->name);
}

List *load_rollups(void) {
    List *all = read_rollups("ORDER BY name", 0, NULL, NULL, CurrentMemoryContext);
    List *out = NIL;
    ListCell *lc;
    foreach (lc, all)
        if (can_manage(((Rollup *) lfirst(lc))->owner)) out = lappend(out, lfirst(lc));
    rollups_by_level = all;
    list_sort(out, by_level_then_name);
    rollups_by_level = NIL;
    return out;
}

List *all_rollups(void) {
    return read_rollups("ORDER BY id", 0, NULL, NULL, CurrentMemoryContext);
}

// ---------------------------------------------------------------------------
// Definitions.
// ---------------------------------------------------------------------------

int32 next_rollup_id(void) {
    SPI_connect();
    // One creation at a time (readers and refreshes go on): the id is the
    // next free one, and a dump carries it along with the rows.
    run_catalog("LOCK TABLE memoria.rollups IN SHARE ROW EXCLUSIVE MODE", 0, NULL, NULL, NULL);
    run_catalog("SELECT coalesce(max(id), 0)::bigint + 1 FROM memoria.rollups", 0, NULL, NULL, NULL);
    int32 id = (int32) spi_int64(1);
    SPI_finish();
    return id;
}

bool rollup_name_taken(const char *name) {
    Oid type = TEXTOID;
    Datum value = CStringGetTextDatum(name);
    SPI_connect();
    // Names are unique across rollups and rollups of Citus tables (two
    // tables, citus.hpp): whoever takes a name holds it until commit, and
    // the next one then sees it.
    run_catalog("SELECT pg_catalog.pg_advisory_xact_lock(1835363698, pg_catalog.hashtext($1))", 1, &type, &value, NULL);
    run_catalog("SELECT 1 FROM memoria.rollups WHERE name = $1", 1, &type, &value, NULL);
    bool taken = SPI_processed > 0;
    SPI_finish();
    return taken || citus_rollup_exists(name);
}

static List *attnum_list(const AttrNumber *a, int n) {
    List *l = NIL;
    for (int i = 0; i < n; i++) l = lappend_int(l, a[i]);
    return l;
}

static List *string_list(char **s, int n) {
    List *l = NIL;
    for (int i = 0; i < n; i++) l = lappend(l, s[i]);
    return l;
}

void insert_rollup(const Rollup *r) {
    Datum v[NUM_ROLLUP_COLUMNS];
    char nulls[NUM_ROLLUP_COLUMNS];
    memset(nulls, ' ', sizeof nulls);
    v[COL_ID] = Int32GetDatum(r->id);
    v[COL_NAME] = CStringGetTextDatum(r->name);
    v[COL_OWNER] = ObjectIdGetDatum(r->owner);
    v[COL_SOURCE] = ObjectIdGetDatum(r->source);
    v[COL_TARGET] = ObjectIdGetDatum(r->target);
    v[COL_DIRTY_LOG] = ObjectIdGetDatum(r->dirty_log);
    v[COL_TIME_ATTNUM] = Int16GetDatum(r->time_attnum);
    v[COL_TIME_TYPE] = ObjectIdGetDatum(r->time_type);
    v[COL_DIMENSIONS] = int2_array_datum(attnum_list(r->dim_attnums, r->ndims));
    v[COL_SCOPE] = int2_array_datum(attnum_list(r->scope_attnums, r->nscope));
    v[COL_MEASURES] = text_array_datum(string_list(r->measures, r->nmeasures));
    v[COL_MEASURE_NAMES] = text_array_datum(string_list(r->measure_names, r->nmeasures));
    v[COL_BUCKET] = IntervalPGetDatum(&r->bucket);
    v[COL_TIME_ZONE] = CStringGetTextDatum(r->time_zone);
    v[COL_FILTER] = r->filter ? CStringGetTextDatum(r->filter) : (Datum) 0;
    if (!r->filter) nulls[COL_FILTER] = 'n';
    v[COL_INVALIDATION] = CStringGetTextDatum(r->updated_at_attnum != 0 ? "updated_at" : "trigger");
    v[COL_UPDATED_AT] = Int16GetDatum(r->updated_at_attnum);
    if (r->updated_at_attnum == 0) nulls[COL_UPDATED_AT] = 'n';
    v[COL_SAFETY_LAG] = IntervalPGetDatum(&r->safety_lag);
    v[COL_SEARCH_PATH] = CStringGetTextDatum(r->search_path);
    v[COL_SETTINGS] = text_array_datum(string_list(r->settings, r->nsettings));
    v[COL_FREEZE_AFTER] = r->has_freeze ? IntervalPGetDatum(&r->freeze_after) : (Datum) 0;
    if (!r->has_freeze) nulls[COL_FREEZE_AFTER] = 'n';
    v[COL_DIMENSION_EXPRS] = r->dim_exprs ? nullable_text_array_datum(r->dim_exprs, r->ndims) : (Datum) 0;
    if (!r->dim_exprs) nulls[COL_DIMENSION_EXPRS] = 'n';
    v[COL_LINK_LOG] = ObjectIdGetDatum(r->link_log);
    if (!OidIsValid(r->link_log)) nulls[COL_LINK_LOG] = 'n';
    v[COL_DELTA_LOG] = ObjectIdGetDatum(r->delta_log);
    if (!OidIsValid(r->delta_log)) nulls[COL_DELTA_LOG] = 'n';
    Oid types[NUM_ROLLUP_COLUMNS];
    Datum vals[NUM_ROLLUP_COLUMNS];
    char vnulls[NUM_ROLLUP_COLUMNS];
    StringInfoData cols, params;
    initStringInfo(&cols);
    initStringInfo(&params);
    int ncols = 0;
    for (int c = 0; c < NUM_ROLLUP_COLUMNS; c++) {
        if (!column_present(c)) continue;
        types[ncols] = ROLLUP_COLUMNS[c].type;
        vals[ncols] = v[c];
        vnulls[ncols] = nulls[c];
        appendStringInfo(&cols, "%s%s", ncols ? ", " : "", ROLLUP_COLUMNS[c].name);
        appendStringInfo(&params, "%s$%d", ncols ? ", " : "", ncols + 1);
        ncols++;
    }
    SPI_connect();
    run_catalog(psprintf("INSERT INTO memoria.rollups (%s) VALUES (%s)", cols.data, params.data), ncols, types, vals,
                vnulls);
    Oid state_types[2] = {INT4OID, TEXTOID};
    Datum state_values[2] = {Int32GetDatum(r->id), CStringGetTextDatum(this_database_mark())};
    if (catalog_has_column("rollup_state", "recorded_in"))
        run_catalog("INSERT INTO memoria.rollup_state (rollup_id, recorded_in) VALUES ($1, $2)", 2, state_types,
                    state_values, NULL);
    else
        run_catalog("INSERT INTO memoria.rollup_state (rollup_id) VALUES ($1)", 1, state_types, state_values, NULL);
    SPI_finish();
}

void delete_rollup(int32 id) {
    Oid type = INT4OID;
    Datum value = Int32GetDatum(id);
    SPI_connect();
    // No foreign key between the two (a parallel pg_restore may load either
    // first): both rows go here.
    run_catalog("DELETE FROM memoria.rollup_state WHERE rollup_id = $1", 1, &type, &value, NULL);
    run_catalog("DELETE FROM memoria.rollups WHERE id = $1", 1, &type, &value, NULL);
    // (A rollup of a Citus reference or citus-local table's placement, src/citus.hpp.)
    if (OidIsValid(get_relname_relid("citus_placements", get_namespace_oid("memoria", false))))
        run_catalog("DELETE FROM memoria.citus_placements WHERE rollup_id = $1", 1, &type, &value, NULL);
    SPI_finish();
}

void set_refresh_interval(int32 id, const Interval *every) {
    Oid types[2] = {INT4OID, INTERVALOID};
    Datum values[2] = {Int32GetDatum(id), IntervalPGetDatum(every)};
    SPI_connect();
    run_catalog("UPDATE memoria.rollups SET refresh_interval = $2 WHERE id = $1", 2, types, values, NULL);
    SPI_finish();
}

// update_rollup: one UPDATE of the rollup's row; $1 is its id, $2 value.
static void update_rollup(const char *table, const char *set, int32 id, Oid type, Datum value, bool isnull) {
    Oid types[2] = {INT4OID, type};
    Datum values[2] = {Int32GetDatum(id), value};
    char nulls[2] = {' ', isnull ? 'n' : ' '};
    SPI_connect();
    run_catalog(psprintf("UPDATE memoria.%s SET %s WHERE %s = $1", table, set,
                         strcmp(table, "rollups") == 0 ? "id" : "rollup_id"),
                type == InvalidOid ? 1 : 2, types, values, nulls);
    SPI_finish();
}

void set_freeze_after(int32 id, const Interval *freeze_after) {
    update_rollup("rollups", "freeze_after = $2", id, INTERVALOID, IntervalPGetDatum(freeze_after), false);
}

void rename_rollup(int32 id, const char *name) {
    update_rollup("rollups", "name = $2", id, TEXTOID, CStringGetTextDatum(name), false);
}

void set_measures(int32 id, List *measures, List *names) {
    Oid types[3] = {INT4OID, TEXTARRAYOID, TEXTARRAYOID};
    Datum values[3] = {Int32GetDatum(id), text_array_datum(measures), text_array_datum(names)};
    SPI_connect();
    run_catalog("UPDATE memoria.rollups SET measures = $2, measure_names = $3 WHERE id = $1", 3, types, values, NULL);
    SPI_finish();
}

void mark_needs_backfill(int32 id) {
    update_rollup("rollup_state",
                  "needs_backfill = true, backfill_next = NULL, backfill_progress = NULL, backfill_started = NULL", id,
                  InvalidOid, (Datum) 0, true);
}

void set_granted_owner(int32 id, Oid owner) {
    update_rollup("rollups", "owner = $2", id, REGROLEOID, ObjectIdGetDatum(owner), false);
}

void mark_adopted(int32 id) {
    update_rollup("rollup_state", "recorded_in = $2", id, TEXTOID, CStringGetTextDatum(this_database_mark()), false);
}

void count_frozen_discarded(int32 id, int64 n) {
    update_rollup("rollup_state", "frozen_keys_discarded = frozen_keys_discarded + $2", id, INT8OID,
                  Int64GetDatum(n), false);
}

void set_dirty_log(int32 id, Oid log) {
    Oid types[2] = {INT4OID, OIDOID};
    Datum values[2] = {Int32GetDatum(id), ObjectIdGetDatum(log)};
    SPI_connect();
    run_catalog("UPDATE memoria.rollups SET dirty_log = $2 WHERE id = $1", 2, types, values, NULL);
    SPI_finish();
}

void set_delta_log(int32 id, Oid log) {
    if (!catalog_has_column("rollups", "delta_log")) return;
    Oid types[2] = {INT4OID, OIDOID};
    Datum values[2] = {Int32GetDatum(id), ObjectIdGetDatum(log)};
    SPI_connect();
    run_catalog("UPDATE memoria.rollups SET delta_log = $2::regclass WHERE id = $1", 2, types, values,
                OidIsValid(log) ? NULL : " n");
    SPI_finish();
}

// ---------------------------------------------------------------------------
// State.
// ---------------------------------------------------------------------------

// first_timestamptz: column 1 of the first result row; false if NULL or none.
static bool first_timestamptz(TimestampTz *out) {
    if (SPI_processed == 0) return false;
    bool isnull;
    Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    if (!isnull) *out = DatumGetTimestampTz(d);
    return !isnull;
}

bool needs_backfill(const Rollup *r) {
    Oid type = INT4OID;
    Datum value = Int32GetDatum(r->id);
    SPI_connect();
    run_catalog("SELECT needs_backfill FROM memoria.rollup_state WHERE rollup_id = $1", 1, &type, &value, NULL);
    bool needs = spi_bool(1);
    SPI_finish();
    return needs;
}

TimestampTz lock_rollup_state(const Rollup *r) {
    Oid type = INT4OID;
    Datum value = Int32GetDatum(r->id);
    SPI_connect();
    run_catalog(r->updated_at_attnum != 0
                    ? "SELECT scanned_through FROM memoria.rollup_state WHERE rollup_id = $1 FOR UPDATE"
                    : "SELECT NULL::timestamptz FROM memoria.rollup_state WHERE rollup_id = $1 FOR UPDATE",
                1, &type, &value, NULL);
    TimestampTz scanned;
    TIMESTAMP_NOBEGIN(scanned);
    (void) first_timestamptz(&scanned);
    SPI_finish();
    return scanned;
}

void set_rebuild_after(const Rollup *r, int64 full_xid) {
    if (!catalog_has_column("rollup_state", "rebuild_after_xid")) return;
    Oid types[2] = {INT4OID, INT8OID};
    Datum values[2] = {Int32GetDatum(r->id), Int64GetDatum(full_xid)};
    const char nulls[2] = {' ', full_xid == 0 ? 'n' : ' '};
    SPI_connect();
    run_catalog("UPDATE memoria.rollup_state SET rebuild_after_xid = $2 WHERE rollup_id = $1", 2, types, values, nulls);
    SPI_finish();
}

int64 rebuild_after(const Rollup *r) {
    if (!catalog_has_column("rollup_state", "rebuild_after_xid")) return 0;
    Oid type = INT4OID;
    Datum value = Int32GetDatum(r->id);
    SPI_connect();
    run_catalog("SELECT coalesce(rebuild_after_xid, 0) FROM memoria.rollup_state WHERE rollup_id = $1", 1, &type, &value,
                NULL);
    int64 xid = SPI_processed > 0 ? spi_int64(1) : 0;
    SPI_finish();
    return xid;
}

void set_scanned_through(const Rollup *r, TimestampTz t) {
    Oid types[2] = {INT4OID, TIMESTAMPTZOID};
    Datum values[2] = {Int32GetDatum(r->id), TimestampTzGetDatum(t)};
    SPI_connect();
    run_catalog("UPDATE memoria.rollup_state SET scanned_through = $2 WHERE rollup_id = $1", 2, types, values, NULL);
    SPI_finish();
}

bool read_watermark(const Rollup *r, TimestampTz *watermark) {
    Oid type = INT4OID;
    Datum value = Int32GetDatum(r->id);
    SPI_connect();
    run_catalog("SELECT watermark FROM memoria.rollup_state WHERE rollup_id = $1", 1, &type, &value, NULL);
    bool has = first_timestamptz(watermark);
    SPI_finish();
    return has;
}

bool record_refresh(const Rollup *r, const RefreshRecord *rec, TimestampTz *watermark) {
    Interval *duration = DatumGetIntervalP(DirectFunctionCall2(
        timestamp_mi, TimestampTzGetDatum(GetCurrentTimestamp()), TimestampTzGetDatum(rec->started)));
    Oid types[9] = {INT4OID, BOOLOID, TIMESTAMPTZOID, INTERVALOID, TEXTOID, TEXTOID, BOOLOID, TIMESTAMPTZOID, INT8OID};
    Datum values[9] = {Int32GetDatum(r->id), BoolGetDatum(rec->advance), TimestampTzGetDatum(rec->candidate),
                       IntervalPGetDatum(duration), CStringGetTextDatum(rec->status),
                       rec->error ? CStringGetTextDatum(rec->error) : (Datum) 0, BoolGetDatum(rec->backfilled),
                       TimestampTzGetDatum(rec->started), Int64GetDatum(rec->failing)};
    char nulls[9] = {' ', ' ', ' ', ' ', ' ', rec->error ? ' ' : 'n', ' ', ' ', ' '};
    bool has_failing = catalog_has_column("rollup_state", "failing_keys");
    SPI_connect();
    run_catalog(psprintf("UPDATE memoria.rollup_state SET "
                "needs_backfill = needs_backfill AND NOT $7, "
                "watermark = CASE WHEN $2 AND (NOT needs_backfill OR $7) "
                "  THEN greatest(watermark, $3) ELSE watermark END, "
                "last_refresh_at = $8, last_duration = $4, last_status = $5, last_error = %s, "
                "refreshes = refreshes + 1 %s WHERE rollup_id = $1 RETURNING watermark",
                // Failing keys a refresh did not look at (-1) stay reported.
                has_failing ? "CASE WHEN $6 IS NULL AND $9 < 0 AND failing_keys > 0 THEN last_error ELSE $6 END"
                            : "$6",
                has_failing ? ", failing_keys = CASE WHEN $9 < 0 THEN failing_keys ELSE $9 END" : ""),
                has_failing ? 9 : 8, types, values, nulls);
    bool has = first_timestamptz(watermark);
    SPI_finish();
    return has;
}

void record_backfill(const Rollup *r, const BackfillStep *step, bool *has_resume, TimestampTz *resume_at,
                     bool *has_started, TimestampTz *resume_started) {
    Oid types[6] = {INT4OID, TIMESTAMPTZOID, FLOAT4OID, BOOLOID, TIMESTAMPTZOID, BOOLOID};
    Datum values[6] = {Int32GetDatum(r->id), TimestampTzGetDatum(step->next), Float4GetDatum(step->progress),
                       BoolGetDatum(step->finished), TimestampTzGetDatum(step->started),
                       BoolGetDatum(step->complete)};
    char nulls[6] = {' ', step->has_next ? ' ' : 'n', step->has_progress ? ' ' : 'n', ' ',
                     step->has_started ? ' ' : 'n', ' '};
    SPI_connect();
    if (step->has_finished) {
        // In updated_at mode the watermark cannot pass what was scanned.
        run_catalog(psprintf("UPDATE memoria.rollup_state SET "
                             "backfill_next = CASE WHEN $4 THEN NULL ELSE $2 END, "
                             "backfill_progress = CASE WHEN $4 THEN NULL ELSE $3 END, "
                             "backfill_started = CASE WHEN $4 THEN NULL ELSE $5 END, "
                             "needs_backfill = needs_backfill AND NOT ($4 AND $6), "
                             "watermark = CASE WHEN $4 AND $6 THEN greatest(watermark, %s) ELSE watermark END "
                             "WHERE rollup_id = $1",
                             r->updated_at_attnum != 0 ? "least($5, scanned_through)" : "$5"),
                    6, types, values, nulls);
    }
    run_catalog("SELECT backfill_next, backfill_started FROM memoria.rollup_state WHERE rollup_id = $1", 1, types,
                values, nulls);
    *has_resume = *has_started = false;
    if (SPI_processed > 0) {
        bool isnull;
        Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        if ((*has_resume = !isnull)) *resume_at = DatumGetTimestampTz(d);
        d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
        if ((*has_started = !isnull)) *resume_started = DatumGetTimestampTz(d);
    }
    SPI_finish();
}

bool capture_marked_lost(const Rollup *r) {
    if (!catalog_has_column("rollup_state", "capture_lost_at")) return false;
    Oid type = INT4OID;
    Datum value = Int32GetDatum(r->id);
    SPI_connect();
    run_catalog("SELECT capture_lost_at IS NOT NULL FROM memoria.rollup_state WHERE rollup_id = $1", 1, &type,
                &value, NULL);
    bool lost = spi_bool(1);
    SPI_finish();
    return lost;
}

void mark_capture_lost(const Rollup *r, bool lost) {
    if (!catalog_has_column("rollup_state", "capture_lost_at")) return;
    Oid type = INT4OID;
    Datum value = Int32GetDatum(r->id);
    SPI_connect();
    run_catalog(lost ? "UPDATE memoria.rollup_state SET capture_lost_at = coalesce(capture_lost_at, now()) "
                       "WHERE rollup_id = $1"
                     : "UPDATE memoria.rollup_state SET capture_lost_at = NULL WHERE rollup_id = $1",
                1, &type, &value, NULL);
    SPI_finish();
}

void remember_capture_tables(const Rollup *r, List *tables) {
    if (!catalog_has_column("rollup_state", "capture_tables")) return;
    Oid types[2] = {INT4OID, OIDARRAYOID};
    Datum values[2] = {Int32GetDatum(r->id), oid_array_datum(tables)};
    SPI_connect();
    run_catalog("UPDATE memoria.rollup_state SET capture_tables = $2 WHERE rollup_id = $1 "
                "AND capture_tables::pg_catalog.oid[] IS DISTINCT FROM $2",
                2, types, values, NULL);
    SPI_finish();
}

List *remembered_capture_tables(const Rollup *r) {
    if (!catalog_has_column("rollup_state", "capture_tables")) return NIL;
    Oid type = INT4OID;
    Datum value = Int32GetDatum(r->id);
    MemoryContext caller = CurrentMemoryContext;
    SPI_connect();
    run_catalog("SELECT unnest(capture_tables) FROM memoria.rollup_state WHERE rollup_id = $1", 1, &type, &value,
                NULL);
    List *out = NIL;
    for (uint64 i = 0; i < SPI_processed; i++) {
        bool isnull;
        Oid rel = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
        MemoryContext old = MemoryContextSwitchTo(caller);
        out = lappend_oid(out, rel);
        MemoryContextSwitchTo(old);
    }
    SPI_finish();
    return out;
}

// due_in_result: `out` with the due rows of the last SPI result (name,
// owner, milliseconds until due), in `into`; *sleep_ms lowered to the wait
// of the others.
static List *due_in_result(List *out, long *sleep_ms, MemoryContext into) {
    for (uint64 i = 0; i < SPI_processed; i++) {
        bool isnull;
        double wait = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
        if (wait > 0) {
            *sleep_ms = Min(*sleep_ms, (long) wait + 1);
            continue;
        }
        MemoryContext old = MemoryContextSwitchTo(into);
        DueRollup *d = (DueRollup *) palloc(sizeof(DueRollup));
        d->name = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
        d->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
        out = lappend(out, d);
        MemoryContextSwitchTo(old);
    }
    return out;
}

List *due_rollups(long *sleep_ms, MemoryContext into) {
    List *out = NIL;
    SPI_connect();
    // The distributed rollups this node coordinates first: a local rollup
    // may read the partial mode's table, never the other way round.
    const char *distributed = citus_due_rollups_sql();
    if (distributed) {
        run_catalog(distributed, 0, NULL, NULL, NULL);
        out = due_in_result(out, sleep_ms, into);
    }
    // Lower levels of a chain first; a rollup of a rollup is due as soon as
    // its source rollup was refreshed after it (one pass brings the chain
    // up to date), a rollup of the partial mode's table as soon as that
    // was combined after it.
    const char *after_partial = distributed ? "       WHEN EXISTS (SELECT 1 FROM memoria.citus_rollups p"
                                              "                    WHERE p.rollup_table = r.source"
                                              "                    AND p.last_refresh_at > s.last_refresh_at) THEN 0 "
                                            : "";
    run_catalog(psprintf("WITH RECURSIVE levels (id, target, level) AS ("
                "  SELECT r.id, r.target, 0 FROM memoria.rollups r"
                "  WHERE NOT EXISTS (SELECT 1 FROM memoria.rollups p WHERE p.target = r.source)"
                "  UNION ALL"
                "  SELECT c.id, c.target, l.level + 1 FROM levels l JOIN memoria.rollups c ON c.source = l.target"
                "  WHERE l.level < 64) "
                "SELECT r.name, c.relowner, "
                "  CASE WHEN s.last_refresh_at IS NULL THEN 0 "
                "       WHEN EXISTS (SELECT 1 FROM memoria.rollups p JOIN memoria.rollup_state ps"
                "                    ON ps.rollup_id = p.id WHERE p.target = r.source"
                "                    AND ps.last_refresh_at > s.last_refresh_at) THEN 0 "
                "%s"
                "       ELSE greatest(0, extract(epoch FROM s.last_refresh_at + r.refresh_interval "
                "                                - clock_timestamp()) * 1000) END::float8 "
                "FROM memoria.rollups r JOIN memoria.rollup_state s ON s.rollup_id = r.id "
                "JOIN pg_catalog.pg_class c ON c.oid = r.source "
                "LEFT JOIN levels l ON l.id = r.id ORDER BY coalesce(l.level, 0), r.name",
                after_partial),
                0, NULL, NULL, NULL);
    out = due_in_result(out, sleep_ms, into);
    SPI_finish();
    return out;
}

}  // namespace memoria

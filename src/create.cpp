// create.cpp: memoria.create_rollup(), memoria.drop_rollup(), memoria.alter_rollup().
//
// create_rollup validates every argument before it creates anything; every
// error names the argument, has a SQLSTATE and a hint.  It then creates, in the
// caller's transaction (so an error leaves nothing behind):
//   - the rollup table (bucket, dimensions, measures; primary key on bucket
//     and dimensions, or UNIQUE NULLS NOT DISTINCT when a dimension is nullable),
//   - the dirty log memoria_state.dirty_<id> (bucket, scope columns),
//   - the capture triggers on the source (and a TRUNCATE trigger on each
//     existing partition, since statement triggers are not cloned),
//   - the catalog rows,
// and records dependencies: the rollup table depends on the source (so DROP
// TABLE source needs CASCADE and names the rollup table); the dirty log and the
// triggers go with the rollup table; all of it goes with DROP EXTENSION.
#include "bucket.hpp"
#include "capture.hpp"
#include "guard.hpp"
#include "horizon.hpp"
#include "rollup.hpp"
#include "triggers.hpp"

namespace memoria {

static const char *ARG_HINT_ALIAS = "Write each measure as 'aggregate(...) AS name', e.g. 'sum(input_tokens) AS input_tokens'.";

[[noreturn]] static void arg_error(int code, const char *msg, const char *hint) {
    ereport(ERROR, (errcode(code), errmsg("%s", msg), hint ? errhint("%s", hint) : 0));
    pg_unreachable();
}

static char *required_text(FunctionCallInfo fcinfo, int argno, const char *argname) {
    if (PG_ARGISNULL(argno))
        arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, psprintf("%s must not be NULL", argname), NULL);
    return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

// text_array_arg: the elements of a text[] argument (no NULL elements allowed).
static List *text_array_arg(FunctionCallInfo fcinfo, int argno, const char *argname) {
    ArrayType *a = PG_GETARG_ARRAYTYPE_P(argno);
    if (ARR_NDIM(a) > 1)
        arg_error(ERRCODE_INVALID_PARAMETER_VALUE, psprintf("%s must be a one-dimensional array", argname), NULL);
    Datum *elems;
    bool *nulls;
    int n;
    deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    List *out = NIL;
    for (int i = 0; i < n; i++) {
        if (nulls[i])
            arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, psprintf("%s must not contain NULL", argname), NULL);
        out = lappend(out, TextDatumGetCString(elems[i]));
    }
    return out;
}

// source_column: attnum of a user column of the source, or an error naming argname.
static AttrNumber source_column(Oid source, const char *col, const char *argname) {
    AttrNumber a = get_attnum(source, col);
    if (a <= 0)
        arg_error(ERRCODE_UNDEFINED_COLUMN,
                  psprintf("%s: column \"%s\" does not exist in %s", argname, col, qualified_relation_name(source)),
                  "Column names are case sensitive and given without quotes, e.g. 'workspace_id'.");
    return a;
}

// ParsedItem: what raw parsing tells about a measure or the filter.
static SelectStmt *parse_single_select(const char *sql, const char *what) {
    List *raw = NIL;
    MemoryContext mcxt = CurrentMemoryContext;
    PG_TRY();
    { raw = raw_parser(sql, RAW_PARSE_DEFAULT); }
    PG_CATCH();
    {
        MemoryContextSwitchTo(mcxt);
        ErrorData *e = CopyErrorData();
        FlushErrorState();
        ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR), errmsg("%s is not a valid expression: %s", what, e->message),
                        errhint("Give a single SQL expression, without a trailing semicolon.")));
    }
    PG_END_TRY();
    if (list_length(raw) != 1 || !IsA(((RawStmt *) linitial(raw))->stmt, SelectStmt))
        ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR), errmsg("%s must be a single expression", what),
                        errhint("Give a single SQL expression, without a trailing semicolon.")));
    SelectStmt *sel = (SelectStmt *) ((RawStmt *) linitial(raw))->stmt;
    if (sel->op != SETOP_NONE || sel->distinctClause || sel->intoClause || sel->fromClause || sel->groupClause ||
        sel->groupDistinct || sel->havingClause || sel->windowClause || sel->valuesLists || sel->sortClause ||
        sel->limitOffset || sel->limitCount || sel->lockingClause || sel->withClause ||
        list_length(sel->targetList) != 1)
        ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR), errmsg("%s must be a single expression", what),
                        errhint("Clauses such as FROM, GROUP BY or a second expression are not allowed here.")));
    return sel;
}

// analyze_query: parse analysis of one statement, turning an error into one
// that names the argument.
static Query *analyze_query(const char *sql, const char *what) {
    Query *q = NULL;
    MemoryContext mcxt = CurrentMemoryContext;
    PG_TRY();
    {
        List *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
        List *qs = pg_analyze_and_rewrite_fixedparams((RawStmt *) linitial(raw), sql, NULL, 0, NULL);
        q = (Query *) linitial(qs);
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(mcxt);
        ErrorData *e = CopyErrorData();
        FlushErrorState();
        ereport(ERROR, (errcode(e->sqlerrcode), errmsg("%s is invalid: %s", what, e->message),
                        e->hint ? errhint("%s", e->hint) : errhint("The expression is checked against the source table.")));
    }
    PG_END_TRY();
    return q;
}

// PostgreSQL's tree walkers take an untyped callback.
#define WALKER(f) ((bool (*)()) (void (*)()) (f))

// time_dependent_walker: a call whose result depends on when it runs.
static bool time_dependent_walker(Node *node, void *context) {
    if (node == NULL) return false;
    if (IsA(node, SQLValueFunction)) {
        switch (((SQLValueFunction *) node)->op) {
            case SVFOP_CURRENT_DATE: case SVFOP_CURRENT_TIME: case SVFOP_CURRENT_TIME_N:
            case SVFOP_CURRENT_TIMESTAMP: case SVFOP_CURRENT_TIMESTAMP_N: case SVFOP_LOCALTIME:
            case SVFOP_LOCALTIME_N: case SVFOP_LOCALTIMESTAMP: case SVFOP_LOCALTIMESTAMP_N:
                return true;
            default:
                break;
        }
    }
    if (IsA(node, FuncExpr)) {
        Oid f = ((FuncExpr *) node)->funcid;
        if (f == F_NOW || f == F_STATEMENT_TIMESTAMP || f == F_TRANSACTION_TIMESTAMP) return true;
    }
    return expression_tree_walker(node, WALKER(time_dependent_walker), context);
}

// now_literal_walker: a string literal that names a moment relative to the
// time it is parsed ('now', 'today', ...): fixed at each parse, so it means
// something else at every refresh.
static bool now_literal_walker(Node *node, void *context) {
    if (node == NULL) return false;
    if (IsA(node, A_Const) && !((A_Const *) node)->isnull && IsA(&((A_Const *) node)->val, String)) {
        char *v = pstrdup(strVal(&((A_Const *) node)->val));
        for (char *c = v; *c; c++) *c = pg_tolower((unsigned char) *c);
        char *t = v + strspn(v, " \t\n");
        size_t len = strlen(t);
        while (len > 0 && (t[len - 1] == ' ' || t[len - 1] == '\t' || t[len - 1] == '\n')) t[--len] = '\0';
        static const char *const RELATIVE_WORDS[] = {"now", "today", "tomorrow", "yesterday"};
        for (const char *word : RELATIVE_WORDS)
            if (strcmp(t, word) == 0) return true;
    }
    return raw_expression_tree_walker(node, WALKER(now_literal_walker), context);
}

// A STABLE built-in memoria accepts: the date and time functions, whose
// results depend on TimeZone, DateStyle and IntervalStyle only, and a
// rollup's statements always run with the settings recorded at creation.
static bool stable_but_pinned(Oid func) {
    if (func >= FirstNormalObjectId || get_func_namespace(func) != PG_CATALOG_NAMESPACE) return false;
    char *name = get_func_name(func);
    static const char *const PREFIXES[] = {"date", "time", "interval", "to_char", "to_date", "to_timestamp",
                                           "make_timestamptz", "extract"};
    for (const char *prefix : PREFIXES)
        if (strncmp(name, prefix, strlen(prefix)) == 0) return true;
    return false;
}

// changeable_function: a function (operator, cast, ...) whose result for the
// same arguments may change: neither IMMUTABLE nor a pinned date/time one.
static bool changeable_function(Oid func, void *context) {
    char v = func_volatile(func);
    if (v == PROVOLATILE_IMMUTABLE || (v == PROVOLATILE_STABLE && stable_but_pinned(func))) return false;
    *(Oid *) context = func;
    return true;
}

static bool changeable_walker(Node *node, void *context) {
    if (node == NULL) return false;
    if (check_functions_in_node(node, changeable_function, context)) return true;
    if (IsA(node, Query)) return query_tree_walker((Query *) node, WALKER(changeable_walker), context, 0);
    return expression_tree_walker(node, WALKER(changeable_walker), context);
}

// deterministic_problem: why the analysed expression (with its raw parse
// tree, for literals) might give another result for the same source rows at
// a later refresh, or NULL: a sub-query (it reads other tables, whose
// changes no trigger sees), the clock, or a function that is not IMMUTABLE.
static char *deterministic_problem(Query *q, Node *raw) {
    if (q->hasSubLinks) return pstrdup("contains a sub-query");
    if (query_tree_walker(q, WALKER(time_dependent_walker), NULL, 0) || now_literal_walker(raw, NULL))
        return pstrdup("depends on the current time");
    Oid func = InvalidOid;
    if (query_tree_walker(q, WALKER(changeable_walker), &func, 0))
        return psprintf("calls %s, which is %s", format_procedure(func),
                        func_volatile(func) == PROVOLATILE_VOLATILE ? "VOLATILE" : "STABLE, not IMMUTABLE");
    return NULL;
}

static const char *DETERMINISTIC_HINT =
    "Measures and filters must depend on the source row only: no sub-queries, no now() or current_date, and "
    "only IMMUTABLE functions (or built-in date/time ones, which run in the rollup's time zone). Declare a "
    "function of yours IMMUTABLE if it reads nothing but its arguments; for dimensions from other tables, roll "
    "up a view.";

// check_deterministic: ERROR naming the argument unless deterministic.
static void check_deterministic(Query *q, Node *raw, const char *what) {
    char *problem = deterministic_problem(q, raw);
    if (problem)
        arg_error(ERRCODE_FEATURE_NOT_SUPPORTED, psprintf("%s %s", what, problem), DETERMINISTIC_HINT);
}

// source_problem: why memoria could not capture every change of the source
// table, or NULL.  Checked at creation and after every ALTER of the source.
static char *source_problem(Oid source, const char **hint) {
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

struct Measure {
    char *text;
    char *alias;
    Oid type;
    int32 typmod;
};

static Measure check_measure(const char *text, int i, const char *src) {
    Measure m;
    m.text = pstrdup(text);
    char *what = psprintf("measures[%d] (%s)", i, text);
    SelectStmt *sel = parse_single_select(psprintf("SELECT\n%s\n", text), what);
    ResTarget *rt = (ResTarget *) linitial(sel->targetList);
    if (rt->name == NULL)
        arg_error(ERRCODE_SYNTAX_ERROR, psprintf("measures[%d] (%s) has no alias", i, text), ARG_HINT_ALIAS);
    m.alias = pstrdup(rt->name);
    Query *q = analyze_query(psprintf("SELECT\n%s\nFROM %s", text, src), what);
    TargetEntry *tle = (TargetEntry *) linitial(q->targetList);
    check_deterministic(q, (Node *) sel, psprintf("measures[%d] (%s)", i, text));
    if (q->hasWindowFuncs || q->hasTargetSRFs)
        arg_error(ERRCODE_GROUPING_ERROR,
                  psprintf("measures[%d] (%s) must not use window or set-returning functions", i, text),
                  ARG_HINT_ALIAS);
    if (!q->hasAggs || !contain_aggs_of_level((Node *) tle->expr, 0))
        arg_error(ERRCODE_GROUPING_ERROR, psprintf("measures[%d] (%s) is not an aggregate", i, text),
                  ARG_HINT_ALIAS);
    m.type = exprType((Node *) tle->expr);
    m.typmod = exprTypmod((Node *) tle->expr);
    if (m.type == UNKNOWNOID || m.type == RECORDOID || get_typtype(m.type) == TYPTYPE_PSEUDO)
        arg_error(ERRCODE_DATATYPE_MISMATCH,
                  psprintf("measures[%d] (%s) has type %s, which a table column cannot have", i, text,
                           format_type_be(m.type)),
                  "Cast the aggregate to a concrete type, e.g. 'sum(x)::bigint AS x'.");
    return m;
}

static void check_filter(const char *filter, const char *src) {
    SelectStmt *sel = parse_single_select(psprintf("SELECT 1 WHERE\n%s\n", filter), "filter");
    Query *q = analyze_query(psprintf("SELECT 1 FROM %s WHERE (\n%s\n)", src, filter), "filter");
    check_deterministic(q, (Node *) sel, "filter");
}

static void spi_run(const char *sql) {
    spi_exec(sql, 0, NULL, NULL, NULL, false);
}

// column_type_sql: the SQL type of a column, with its collation; with
// base_type, a domain's base type instead (the dirty log's columns: memoria
// writes them with elevated rights, so no default or CHECK of a user's
// domain may run there).
static char *column_type_sql(Oid rel, AttrNumber a, bool base_type = false) {
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

static Datum int2_array_datum(List *attnums) {
    int n = list_length(attnums);
    Datum *d = (Datum *) palloc((n + 1) * sizeof(Datum));
    for (int i = 0; i < n; i++) d[i] = Int16GetDatum((int16) list_nth_int(attnums, i));
    return PointerGetDatum(construct_array(d, n, INT2OID, 2, true, TYPALIGN_SHORT));
}

static Datum text_array_datum(List *strings) {
    int n = list_length(strings);
    Datum *d = (Datum *) palloc((n + 1) * sizeof(Datum));
    for (int i = 0; i < n; i++) d[i] = CStringGetTextDatum((const char *) list_nth(strings, i));
    return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

}  // namespace memoria

using namespace memoria;

static void record_function_dependencies(const Rollup *r);

MEMORIA_FUNCTION(memoria_create_rollup) {
    // ---- 1. Validate every argument; create nothing yet. ----
    // The caller's search_path resolves the measure and filter expressions,
    // now and at every refresh (this function has no SET clause for that).
    char *caller_search_path = pstrdup(GetConfigOption("search_path", false, false));
    // And the other settings that decide what the expressions' text means.
    List *settings = NIL;
    for (int k = 0; k < NUM_PARSE_SETTINGS; k++)
        settings = lappend(settings, psprintf("%s=%s", PARSE_SETTINGS[k], GetConfigOption(PARSE_SETTINGS[k], false, false)));
    char *name = required_text(fcinfo, 0, "name");
    if (name[0] == '\0' || strlen(name) >= NAMEDATALEN - 1)
        arg_error(ERRCODE_INVALID_NAME, psprintf("name \"%s\" must be 1 to %d bytes long", name, NAMEDATALEN - 2),
                  "The name is also the default rollup table's name, so it follows identifier limits.");
    if (PG_ARGISNULL(1)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "source must not be NULL", NULL);
    Oid source = PG_GETARG_OID(1);
    char relkind = get_rel_relkind(source);
    if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
        arg_error(ERRCODE_WRONG_OBJECT_TYPE, psprintf("source %s is not a table", qualified_relation_name(source)),
                  "A rollup's source must be a table or a partitioned table.");
    if (!pg_class_ownercheck(source, GetUserId()))
        arg_error(ERRCODE_INSUFFICIENT_PRIVILEGE,
                  psprintf("source: must be owner of table %s", qualified_relation_name(source)),
                  "Only the owner of a table (or a superuser) may define a rollup on it.");
    // Hold off concurrent DDL and writers until the triggers exist.
    LockRelationOid(source, ShareRowExclusiveLock);
    {
        const char *hint;
        char *problem = source_problem(source, &hint);
        if (problem)
            arg_error(ERRCODE_FEATURE_NOT_SUPPORTED,
                      psprintf("source %s %s", qualified_relation_name(source), problem), hint);
    }
    char *src = qualified_relation_name(source);

    char *time_column = required_text(fcinfo, 2, "time_column");
    AttrNumber time_attnum = source_column(source, time_column, "time_column");
    Oid time_type = get_atttype(source, time_attnum);
    TimeKind kind;
    if (!time_kind_of(time_type, &kind))
        arg_error(ERRCODE_DATATYPE_MISMATCH,
                  psprintf("time_column \"%s\" has type %s", time_column, format_type_be(time_type)),
                  "The time column must be timestamptz, timestamp or date.");

    if (PG_ARGISNULL(3))
        arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "dimensions must not be NULL",
                  "Use ARRAY[]::text[] for a rollup with no dimensions.");
    List *dim_names = text_array_arg(fcinfo, 3, "dimensions");
    List *dims = NIL;
    bool dims_not_null = true;
    ListCell *lc;
    foreach (lc, dim_names) {
        const char *d = (const char *) lfirst(lc);
        AttrNumber a = source_column(source, d, "dimensions");
        if (a == time_attnum)
            arg_error(ERRCODE_INVALID_COLUMN_REFERENCE,
                      psprintf("dimensions must not include the time_column \"%s\"", d),
                      "The time column is rolled up into the bucket column.");
        if (strcmp(d, "bucket") == 0)
            arg_error(ERRCODE_DUPLICATE_COLUMN, "dimensions: a column named \"bucket\" would clash with the rollup's bucket column",
                      "Roll up a view or a renamed column instead.");
        if (list_member_int(dims, a))
            arg_error(ERRCODE_DUPLICATE_COLUMN, psprintf("dimensions lists column \"%s\" twice", d), NULL);
        dims = lappend_int(dims, a);
        HeapTuple tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(source), Int16GetDatum(a));
        if (!((Form_pg_attribute) GETSTRUCT(tup))->attnotnull) dims_not_null = false;
        ReleaseSysCache(tup);
    }

    List *scope = NIL;
    if (PG_ARGISNULL(7)) {
        scope = list_copy(dims);
    } else {
        foreach (lc, text_array_arg(fcinfo, 7, "scope")) {
            const char *s = (const char *) lfirst(lc);
            AttrNumber a = get_attnum(source, s);
            if (!list_member_int(dims, a))
                arg_error(ERRCODE_INVALID_COLUMN_REFERENCE, psprintf("scope column \"%s\" is not one of the dimensions", s),
                          "scope must be a subset of dimensions (NULL means all of them).");
            if (list_member_int(scope, a))
                arg_error(ERRCODE_DUPLICATE_COLUMN, psprintf("scope lists column \"%s\" twice", s), NULL);
            scope = lappend_int(scope, a);
        }
    }

    if (PG_ARGISNULL(4)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "measures must not be NULL", ARG_HINT_ALIAS);
    List *measure_texts = text_array_arg(fcinfo, 4, "measures");
    if (measure_texts == NIL)
        arg_error(ERRCODE_INVALID_PARAMETER_VALUE, "measures must list at least one aggregate", ARG_HINT_ALIAS);
    List *measures = NIL, *aliases = NIL;
    int i = 0;
    foreach (lc, measure_texts) {
        Measure *m = (Measure *) palloc(sizeof(Measure));
        *m = check_measure((const char *) lfirst(lc), ++i, src);
        ListCell *lc2;
        bool clash = strcmp(m->alias, "bucket") == 0;
        foreach (lc2, aliases) clash = clash || strcmp((const char *) lfirst(lc2), m->alias) == 0;
        foreach (lc2, dim_names) clash = clash || strcmp((const char *) lfirst(lc2), m->alias) == 0;
        if (clash)
            arg_error(ERRCODE_DUPLICATE_COLUMN,
                      psprintf("measures[%d]: alias \"%s\" is already used by the bucket, a dimension or another measure", i, m->alias),
                      "Give every measure its own alias.");
        measures = lappend(measures, m);
        aliases = lappend(aliases, m->alias);
    }

    if (PG_ARGISNULL(5)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "bucket must not be NULL", NULL);
    Interval *bucket = PG_GETARG_INTERVAL_P(5);
    (void) check_bucket_width(bucket, kind);
    char *time_zone = required_text(fcinfo, 6, "time_zone");
    lookup_time_zone(time_zone);

    char *filter = PG_ARGISNULL(8) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(8));
    if (filter != NULL) check_filter(filter, src);

    char *invalidation = required_text(fcinfo, 9, "invalidation");
    bool updated_at_mode = strcmp(invalidation, "updated_at") == 0;
    if (!updated_at_mode && strcmp(invalidation, "trigger") != 0)
        arg_error(ERRCODE_INVALID_PARAMETER_VALUE,
                  psprintf("invalidation must be 'trigger' or 'updated_at', not '%s'", invalidation), NULL);
    AttrNumber updated_at_attnum = InvalidAttrNumber;
    if (!updated_at_mode && !PG_ARGISNULL(10))
        arg_error(ERRCODE_INVALID_PARAMETER_VALUE, "updated_at_column is only used with invalidation => 'updated_at'",
                  "Leave updated_at_column NULL in trigger mode.");
    if (updated_at_mode) {
        if (PG_ARGISNULL(10))
            arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "updated_at_column is required when invalidation = 'updated_at'",
                      "Name a timestamptz NOT NULL column that every INSERT and UPDATE sets to now().");
        char *u = text_to_cstring(PG_GETARG_TEXT_PP(10));
        updated_at_attnum = get_attnum(source, u);
        if (updated_at_attnum <= 0)
            arg_error(ERRCODE_UNDEFINED_COLUMN, psprintf("updated_at_column \"%s\" does not exist in %s", u, src), NULL);
        HeapTuple tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(source), Int16GetDatum(updated_at_attnum));
        Form_pg_attribute att = (Form_pg_attribute) GETSTRUCT(tup);
        bool is_tstz = att->atttypid == TIMESTAMPTZOID, not_null = att->attnotnull;
        ReleaseSysCache(tup);
        if (!is_tstz)
            arg_error(ERRCODE_DATATYPE_MISMATCH, psprintf("updated_at_column \"%s\" must be of type timestamptz", u),
                      "A timestamp without time zone cannot be compared with the refresh horizon safely; "
                      "ALTER the column TYPE timestamptz.");
        if (!not_null)
            arg_error(ERRCODE_INVALID_COLUMN_DEFINITION, psprintf("updated_at_column \"%s\" must be NOT NULL", u),
                      "A row with a NULL updated_at would never be found; ALTER the column SET NOT NULL.");
        if (!catalog_has_scan_mark())
            arg_error(ERRCODE_FEATURE_NOT_SUPPORTED, "invalidation 'updated_at' needs memoria 0.2.0 or later",
                      "Run ALTER EXTENSION memoria UPDATE.");
    }
    if (PG_ARGISNULL(11)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "safety_lag must not be NULL", NULL);
    Interval *safety_lag = PG_GETARG_INTERVAL_P(11);
    if (safety_lag->month < 0 || safety_lag->day < 0 || safety_lag->time < 0)
        arg_error(ERRCODE_INVALID_PARAMETER_VALUE, "safety_lag must not be negative", NULL);

    SPI_connect();
    Oid caller = GetUserId();
    Oid ext_owner = extension_owner();
    {
        Oid types[1] = {TEXTOID};
        Datum values[1] = {CStringGetTextDatum(name)};
        CatalogSession cs = enter_catalog_session();
        spi_exec("SELECT 1 FROM memoria.rollups WHERE name = $1", 1, types, values, NULL, true);
        leave_catalog_session(cs);
        if (SPI_processed > 0)
            arg_error(ERRCODE_DUPLICATE_OBJECT, psprintf("rollup \"%s\" already exists", name),
                      "Drop it first with memoria.drop_rollup(), or choose another name.");
    }
    SavedUser saved;

    // Target: default memoria_rollup.<name>, or the given (possibly qualified) name.
    RangeVar *target_rv;
    bool default_target = PG_ARGISNULL(12);
    if (default_target) {
        target_rv = makeRangeVar(pstrdup("memoria_rollup"), name, -1);
    } else {
        char *t = text_to_cstring(PG_GETARG_TEXT_PP(12));
        RangeVar *rv = NULL;
        MemoryContext mcxt = CurrentMemoryContext;
        PG_TRY();
        { rv = makeRangeVarFromNameList(stringToQualifiedNameList(t)); }
        PG_CATCH();
        {
            MemoryContextSwitchTo(mcxt);
            FlushErrorState();
            arg_error(ERRCODE_INVALID_NAME, psprintf("target \"%s\" is not a valid table name", t),
                      "Give a table name, optionally schema-qualified, e.g. 'analytics.usage_daily'.");
        }
        PG_END_TRY();
        target_rv = rv;
    }
    Oid target_nsp = RangeVarGetCreationNamespace(target_rv);
    if (OidIsValid(get_relname_relid(target_rv->relname, target_nsp)))
        arg_error(ERRCODE_DUPLICATE_TABLE,
                  psprintf("target table %s already exists",
                           quote_qualified_identifier(get_namespace_name(target_nsp), target_rv->relname)),
                  "memoria creates the rollup table itself; choose another name or drop the table.");
    if (isAnyTempNamespace(target_nsp))
        arg_error(ERRCODE_FEATURE_NOT_SUPPORTED, "target must not be a temporary table",
                  "A rollup outlives the session; give a table name in a permanent schema.");
    char *target_sql = quote_qualified_identifier(get_namespace_name(target_nsp), target_rv->relname);

    // The whole aggregate statement must plan (as the caller, with its search_path).
    {
        StringInfoData q;
        initStringInfo(&q);
        appendStringInfo(&q, "SELECT memoria.bucket(%s, $1, $2)", quote_identifier(time_column));
        foreach (lc, dim_names) appendStringInfo(&q, ", %s", quote_identifier((const char *) lfirst(lc)));
        foreach (lc, measures) appendStringInfo(&q, ",\n%s\n", ((Measure *) lfirst(lc))->text);
        appendStringInfo(&q, "FROM %s", src);
        if (filter) appendStringInfo(&q, " WHERE (\n%s\n)", filter);
        appendStringInfoString(&q, " GROUP BY 1");
        for (int k = 0; k < list_length(dims); k++) appendStringInfo(&q, ", %d", k + 2);
        Oid types[2] = {INTERVALOID, TEXTOID};
        if (SPI_prepare(q.data, 2, types) == NULL)
            elog(ERROR, "could not prepare the rollup's aggregate statement: %s", q.data);
    }

    // ---- 2. Create. ----
    // From here on only memoria's own SQL runs, some of it as the extension's
    // owner: pin the search_path so no object of the caller's can stand in
    // for a built-in one.  (Validation above used the caller's search_path,
    // which is also what refreshes will use to resolve the expressions.)
    int guc_nest = NewGUCNestLevel();
    (void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true,
                             0, false);
    saved = become_user(ext_owner);
    spi_exec("SELECT nextval(pg_get_serial_sequence('memoria.rollups', 'id'))::bigint", 0, NULL, NULL, NULL, false);
    int32 id = (int32) spi_int64(1);

    // The rollup table.  In memoria_rollup it is created by the extension's
    // owner and handed to the caller; elsewhere the caller's rights apply.
    if (!default_target) restore_user(saved);
    StringInfoData ddl;
    initStringInfo(&ddl);
    appendStringInfo(&ddl, "CREATE TABLE %s (bucket %s NOT NULL", target_sql, format_type_be(time_type));
    foreach (lc, dims)
        appendStringInfo(&ddl, ", %s %s", quote_identifier(get_attname(source, lfirst_int(lc), false)),
                         column_type_sql(source, lfirst_int(lc)));
    foreach (lc, measures) {
        Measure *m = (Measure *) lfirst(lc);
        appendStringInfo(&ddl, ", %s %s", quote_identifier(m->alias), format_type_with_typemod(m->type, m->typmod));
    }
    appendStringInfoString(&ddl, dims_not_null ? ", PRIMARY KEY (bucket" : ", UNIQUE NULLS NOT DISTINCT (bucket");
    foreach (lc, dims) appendStringInfo(&ddl, ", %s", quote_identifier(get_attname(source, lfirst_int(lc), false)));
    // Free space on each page: a refresh rewrites rows in place, and an
    // update that fits on its page is HOT (no index insertion, half the cost).
    appendStringInfoString(&ddl, ")) WITH (fillfactor = 80)");
    spi_run(ddl.data);
    CommandCounterIncrement();
    Oid target = get_relname_relid(target_rv->relname, target_nsp);
    if (default_target) {
        spi_run(psprintf("ALTER TABLE %s OWNER TO %s", target_sql, quote_identifier(GetUserNameFromId(caller, false))));
    } else {
        saved = become_user(ext_owner);
    }
    spi_run(psprintf("COMMENT ON TABLE %s IS %s", target_sql,
                     quote_literal_cstr(psprintf("memoria rollup %s of %s", name, src))));

    // Published by a FOR ALL TABLES publication, its UPDATEs and DELETEs
    // need a replica identity: without a primary key, the whole row.
    if (!dims_not_null) spi_run(psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", target_sql));

    // The dirty log: bucket + scope columns, no index, vacuumed often.  It
    // belongs to the extension (its owner could otherwise put a trigger, a
    // rule or another column type on a table memoria writes with elevated
    // rights); the rollup's owner may only read, add and claim keys.
    char *log_name = psprintf("dirty_%d", id);
    char *log_sql = quote_qualified_identifier("memoria_state", log_name);
    resetStringInfo(&ddl);
    appendStringInfo(&ddl, "CREATE TABLE %s (bucket %s", log_sql, format_type_be(time_type));
    foreach (lc, scope)
        appendStringInfo(&ddl, ", %s %s", quote_identifier(get_attname(source, lfirst_int(lc), false)),
                         column_type_sql(source, lfirst_int(lc), true));
    appendStringInfoString(&ddl, ") WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000)");
    spi_run(ddl.data);
    spi_run(psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", log_sql));
    spi_run(psprintf("GRANT SELECT, INSERT, DELETE ON %s TO %s", log_sql,
                     quote_identifier(GetUserNameFromId(caller, false))));
    CommandCounterIncrement();
    Oid dirty_log = get_relname_relid(log_name, get_namespace_oid("memoria_state", false));

    // Dependencies.
    Oid ext = get_extension_oid("memoria", false);
    record_dependency(RelationRelationId, target, RelationRelationId, source, DEPENDENCY_NORMAL);
    record_dependency(RelationRelationId, target, ExtensionRelationId, ext, DEPENDENCY_AUTO);
    record_dependency(RelationRelationId, dirty_log, RelationRelationId, target, DEPENDENCY_AUTO);
    record_dependency(RelationRelationId, dirty_log, ExtensionRelationId, ext, DEPENDENCY_AUTO);

    // Catalog rows.
    {
        bool with_settings = catalog_has_column("rollups", "settings");
        Oid types[20] = {INT4OID, TEXTOID, OIDOID, OIDOID, OIDOID, OIDOID, INT2OID, OIDOID, INT2ARRAYOID,
                         INT2ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INTERVALOID, TEXTOID, TEXTOID, TEXTOID,
                         INTERVALOID, TEXTOID, INT2OID, TEXTARRAYOID};
        List *mtexts = NIL;
        foreach (lc, measures) mtexts = lappend(mtexts, ((Measure *) lfirst(lc))->text);
        Datum values[20] = {Int32GetDatum(id), CStringGetTextDatum(name), ObjectIdGetDatum(caller),
                            ObjectIdGetDatum(source), ObjectIdGetDatum(target), ObjectIdGetDatum(dirty_log),
                            Int16GetDatum(time_attnum), ObjectIdGetDatum(time_type), int2_array_datum(dims),
                            int2_array_datum(scope), text_array_datum(mtexts), text_array_datum(aliases),
                            IntervalPGetDatum(bucket), CStringGetTextDatum(time_zone),
                            filter ? CStringGetTextDatum(filter) : (Datum) 0, CStringGetTextDatum(invalidation),
                            IntervalPGetDatum(safety_lag), CStringGetTextDatum(caller_search_path),
                            Int16GetDatum(updated_at_attnum), text_array_datum(settings)};
        char nulls[20];
        memset(nulls, ' ', sizeof nulls);
        if (!filter) nulls[14] = 'n';
        if (!updated_at_mode) nulls[18] = 'n';
        spi_exec(psprintf("INSERT INTO memoria.rollups (id, name, owner, source, target, dirty_log, time_attnum, "
                          "time_type, dimension_attnums, scope_attnums, measures, measure_names, bucket, time_zone, "
                          "filter, invalidation, safety_lag, search_path, updated_at_attnum%s) VALUES ($1, $2, $3, "
                          "$4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19%s)",
                          with_settings ? ", settings" : "", with_settings ? ", $20" : ""),
                 with_settings ? 20 : 19, types, values, nulls, false);
        spi_exec("INSERT INTO memoria.rollup_state (rollup_id) VALUES ($1)", 1, types, values, NULL, false);
    }
    CommandCounterIncrement();

    // Capture triggers (triggers.cpp), made from the catalog row just written.
    restore_user(saved);
    Rollup *r = find_rollup_by_id(id);
    if (r == NULL) elog(ERROR, "memoria: rollup %d vanished while being created", id);
    reconcile_triggers(r, true);
    record_function_dependencies(r);
    saved = become_user(ext_owner);

    if (updated_at_mode) {
        // Rows stamped up to the horizon are the backfill's; later ones
        // are found by refresh.  The capture trigger created above holds
        // off writers of the source, so no prepared transaction has rows.
        TimestampTz horizon;
        if (!updated_at_horizon(r, true, &horizon)) TIMESTAMP_NOBEGIN(horizon);
        Oid stypes[2] = {INT4OID, TIMESTAMPTZOID};
        Datum svalues[2] = {Int32GetDatum(id), TimestampTzGetDatum(horizon)};
        spi_exec("UPDATE memoria.rollup_state SET scanned_through = $2 WHERE rollup_id = $1", 2, stypes, svalues,
                 NULL, false);
    }
    restore_user(saved);
    AtEOXact_GUC(true, guc_nest);
    SPI_finish();
    PG_RETURN_OID(target);
}

MEMORIA_FUNCTION(memoria_drop_rollup) {
    if (PG_ARGISNULL(0)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "name must not be NULL", NULL);
    bool drop_table = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
    Rollup *r = load_rollup(text_to_cstring(PG_GETARG_TEXT_PP(0)));
    lock_rollup(r->id);  // let a running refresh finish first
    SPI_connect();
    SavedUser saved = become_user(extension_owner());
    // The catalog row first: the sql_drop hook refuses to let a trigger of a
    // rollup that still exists be dropped.
    Oid itypes[1] = {INT4OID};
    Datum ivalues[1] = {Int32GetDatum(r->id)};
    spi_exec("DELETE FROM memoria.rollups WHERE id = $1", 1, itypes, ivalues, NULL, false);
    CommandCounterIncrement();
    // Then the capture triggers: dropping them waits for in-flight writers,
    // whose keys are then already in the log we drop next.
    drop_triggers(r);
    spi_exec(psprintf("DROP TABLE IF EXISTS %s", qualified_relation_name(r->dirty_log)), 0, NULL, NULL, NULL, false);
    if (drop_table) {
        spi_exec(psprintf("DROP TABLE %s", qualified_relation_name(r->target)), 0, NULL, NULL, NULL, false);
    } else {
        // The table stays as a plain table: forget memoria's dependencies.
        deleteDependencyRecordsForSpecific(RelationRelationId, r->target, DEPENDENCY_NORMAL, RelationRelationId,
                                           r->source);
        deleteDependencyRecordsForSpecific(RelationRelationId, r->target, DEPENDENCY_AUTO, ExtensionRelationId,
                                           get_extension_oid("memoria", false));
    }
    restore_user(saved);
    SPI_finish();
    PG_RETURN_VOID();
}

MEMORIA_FUNCTION(memoria_alter_rollup) {
    if (PG_ARGISNULL(0)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "name must not be NULL", NULL);
    Rollup *r = load_rollup(text_to_cstring(PG_GETARG_TEXT_PP(0)));
    if (PG_ARGISNULL(1)) PG_RETURN_VOID();
    Interval *every = PG_GETARG_INTERVAL_P(1);
    if (every->month < 0 || every->day < 0 || every->time < 0 ||
        (every->month == 0 && every->day == 0 && every->time < USECS_PER_SEC))
        arg_error(ERRCODE_INVALID_PARAMETER_VALUE, "refresh_interval must be at least 1 second", NULL);
    SPI_connect();
    SavedUser saved = become_user(extension_owner());
    Oid types[2] = {INT4OID, INTERVALOID};
    Datum values[2] = {Int32GetDatum(r->id), IntervalPGetDatum(every)};
    spi_exec("UPDATE memoria.rollups SET refresh_interval = $2 WHERE id = $1", 2, types, values, NULL, false);
    restore_user(saved);
    SPI_finish();
    PG_RETURN_VOID();
}

// ---------------------------------------------------------------------------
// memoria._check_rollup(name): called by the ddl_command_end event trigger
// after an ALTER TABLE of a rollup's source.  Renames of the source and of
// the columns memoria stores by attribute number are harmless; anything that
// would make the rollup silently wrong or failing raises an ERROR, which
// undoes the ALTER.
// ---------------------------------------------------------------------------

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

// analyze_expressions: the rollup's measures and filter as one analysed
// query over its source, as its owner with its recorded settings; with
// *raw its raw parse tree.  On failure, NULL and *problem says why.
static Query *analyze_expressions(const Rollup *r, Node **raw, char **problem) {
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfoString(&sql, "SELECT\n");
    for (int i = 0; i < r->nmeasures; i++) appendStringInfo(&sql, "%s%s\n", i ? ",\n" : "", r->measures[i]);
    appendStringInfo(&sql, "FROM %s", qualified_relation_name(r->source));
    if (r->filter) appendStringInfo(&sql, " WHERE (\n%s\n)", r->filter);
    Query *q = NULL;
    *problem = NULL;
    RollupSession session = enter_rollup_session(r);
    MemoryContext mcxt = CurrentMemoryContext;
    PG_TRY();
    {
        RawStmt *stmt = (RawStmt *) linitial(raw_parser(sql.data, RAW_PARSE_DEFAULT));
        *raw = (Node *) copyObjectImpl(stmt->stmt);  // parse analysis may scribble on its input
        q = (Query *) linitial(pg_analyze_and_rewrite_fixedparams(stmt, sql.data, NULL, 0, NULL));
    }
    PG_CATCH();
    {
        // Callers raise an ERROR on a problem, which aborts whatever this
        // analysis left half done.
        MemoryContextSwitchTo(mcxt);
        ErrorData *e = CopyErrorData();
        FlushErrorState();
        *problem = psprintf("its measures or filter would fail: %s", e->message);
        q = NULL;
    }
    PG_END_TRY();
    leave_rollup_session(session);
    return q;
}

// expressions_problem: the measures (and filter) must still analyse to the
// types of the rollup's columns, and still be deterministic.
static char *expressions_problem(const Rollup *r) {
    Node *raw;
    char *problem;
    Query *q = analyze_expressions(r, &raw, &problem);
    if (q == NULL) return problem;
    int i = 0;
    ListCell *lc;
    foreach (lc, q->targetList) {
        TargetEntry *tle = (TargetEntry *) lfirst(lc);
        Oid want;
        int32 want_typmod;
        Oid coll;
        get_atttypetypmodcoll(r->target, (AttrNumber) (2 + r->ndims + i), &want, &want_typmod, &coll);
        Oid got = exprType((Node *) tle->expr);
        if (got != want)
            return psprintf("its measure \"%s\" would have type %s instead of %s", r->measure_names[i],
                            format_type_be(got), format_type_be(want));
        i++;
    }
    problem = deterministic_problem(q, raw);
    return problem ? psprintf("its measures or filter %s", problem) : NULL;
}

static bool collect_function(Oid func, void *context) {
    List **funcs = (List **) context;
    if (func >= FirstNormalObjectId) *funcs = list_append_unique_oid(*funcs, func);
    return false;
}

static bool collect_walker(Node *node, void *context) {
    if (node == NULL) return false;
    (void) check_functions_in_node(node, collect_function, context);
    if (IsA(node, Query)) return query_tree_walker((Query *) node, WALKER(collect_walker), context, 0);
    return expression_tree_walker(node, WALKER(collect_walker), context);
}

// record_function_dependencies: the rollup table depends on every function
// of the user's its expressions call, as a view does: DROP FUNCTION then
// needs CASCADE, and a CREATE OR REPLACE of one rebuilds the rollup.
static void record_function_dependencies(const Rollup *r) {
    Node *raw;
    char *problem;
    Query *q = analyze_expressions(r, &raw, &problem);
    if (q == NULL) elog(ERROR, "memoria: %s", problem);
    List *funcs = NIL;
    (void) query_tree_walker(q, WALKER(collect_walker), &funcs, 0);
    deleteDependencyRecordsForClass(RelationRelationId, r->target, ProcedureRelationId, DEPENDENCY_NORMAL);
    ListCell *lc;
    foreach (lc, funcs)
        record_dependency(RelationRelationId, r->target, ProcedureRelationId, lfirst_oid(lc), DEPENDENCY_NORMAL);
}

// rollup_problem: what about the source no longer fits the rollup, or NULL.
static char *rollup_problem(const Rollup *r) {
    const char *hint;
    char *problem = source_problem(r->source, &hint);
    if (problem) return psprintf("the source %s", problem);
    problem = column_problem(r->source, r->time_attnum, "time column", r->time_type, -2, InvalidOid);
    for (int i = 0; i < r->ndims && !problem; i++) {
        Oid type;
        int32 typmod;
        Oid coll;
        get_atttypetypmodcoll(r->target, (AttrNumber) (2 + i), &type, &typmod, &coll);
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
static void check_still_fits(const Rollup *r) {
    char *problem = rollup_problem(r);
    if (problem)
        ereport(ERROR, (errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
                        errmsg("cannot alter %s: memoria rollup \"%s\" depends on it, and %s",
                               qualified_relation_name(r->source), r->name, problem),
                        errhint("Drop the rollup first with memoria.drop_rollup('%s'), then create it again "
                                "after the change.", r->name)));
}

// memoria._after_ddl(rollup_id): called by the ddl_command_end event trigger
// after a CREATE or ALTER TABLE in the source's tree (or an ALTER TRIGGER).
// Renames of the source and of the columns memoria stores by attribute number
// are harmless; anything that would make the rollup silently wrong or
// failing raises an ERROR, which undoes the command.  Then the capture
// triggers are brought in line with the source (triggers.cpp), and a
// disabled trigger is reported (and the rollup rebuilt once it is back).
MEMORIA_FUNCTION(memoria_after_ddl) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL) PG_RETURN_VOID();
    check_still_fits(r);
    reconcile_triggers(r, false);
    settle_capture(r, true);
    PG_RETURN_VOID();
}

// memoria._function_changed(rollup_id): a function the rollup's expressions
// call was replaced or altered (ddl_command_end): it must still fit, and the
// rollup is rebuilt, since its rows were computed by the old definition.
MEMORIA_FUNCTION(memoria_function_changed) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL) PG_RETURN_VOID();
    char *problem = rollup_problem(r);
    if (problem)
        ereport(ERROR, (errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
                        errmsg("cannot change the function: memoria rollup \"%s\" depends on it, and %s", r->name,
                               problem),
                        errhint("Drop the rollup first with memoria.drop_rollup('%s'), then create it again "
                                "after the change.", r->name)));
    record_function_dependencies(r);
    mark_rebuild(r);
    ereport(NOTICE, (errmsg("memoria rollup \"%s\" uses the function changed: its next refresh rebuilds it",
                            r->name)));
    PG_RETURN_VOID();
}

// memoria._in_own_ddl(): whether the trigger being dropped is memoria's doing.
MEMORIA_FUNCTION(memoria_in_own_ddl) {
    PG_RETURN_BOOL(in_own_ddl());
}

// memoria._capture_problem(rollup_id): why the rollup's capture cannot be
// trusted now, or NULL (also for a rollup the caller may not see).
MEMORIA_FUNCTION(memoria_capture_problem) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL || !can_manage(r->owner) || get_rel_name(r->source) == NULL) PG_RETURN_NULL();
    char *problem = capture_problem(r);
    if (problem == NULL) PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(problem));
}

// memoria._repair(rollup_id): the update script's repair of a rollup made by
// an older version: its dirty log owned by the extension, the triggers of
// this version's layout.
MEMORIA_FUNCTION(memoria_repair) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL) PG_RETURN_VOID();
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    char *log = qualified_relation_name(r->dirty_log);
    spi_exec(psprintf("ALTER TABLE %s OWNER TO %s", log, quote_identifier(GetUserNameFromId(extension_owner(), false))),
             0, NULL, NULL, NULL, false);
    spi_exec(psprintf("REVOKE ALL ON %s FROM PUBLIC", log), 0, NULL, NULL, NULL, false);
    spi_exec(psprintf("GRANT SELECT, INSERT, DELETE ON %s TO %s", log,
                      quote_identifier(GetUserNameFromId(r->owner, false))),
             0, NULL, NULL, NULL, false);
    spi_exec(psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", log), 0, NULL, NULL, NULL, false);
    Oid types[1] = {OIDOID};
    Datum values[1] = {ObjectIdGetDatum(r->target)};
    spi_exec("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1 AND indisprimary)", 1, types,
             values, NULL, true);
    bool isnull;
    if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
        spi_exec(psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", qualified_relation_name(r->target)), 0, NULL,
                 NULL, NULL, false);
    // Log columns of a domain type become its base type (create_rollup).
    spi_exec(psprintf("SELECT format('ALTER TABLE %%s ALTER COLUMN %%I TYPE %%s', a.attrelid::regclass, a.attname, "
                      "pg_catalog.format_type(t.typbasetype, t.typtypmod)) FROM pg_catalog.pg_attribute a "
                      "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
                      "WHERE a.attrelid = %u AND a.attnum > 0 AND t.typtype = 'd'", r->dirty_log),
             0, NULL, NULL, NULL, true);
    List *alters = NIL;
    for (uint64 i = 0; i < SPI_processed; i++)
        alters = lappend(alters, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
    ListCell *lc;
    foreach (lc, alters) spi_exec((const char *) lfirst(lc), 0, NULL, NULL, NULL, false);
    leave_catalog_session(cs);
    SPI_finish();
    CommandCounterIncrement();
    reconcile_triggers(r, true);
    record_function_dependencies(r);
    PG_RETURN_VOID();
}

// ---------------------------------------------------------------------------
// Entry points of older SQL versions (the library serves them until ALTER
// EXTENSION UPDATE): 0.2.0's ALTER guard and partition hook.
// ---------------------------------------------------------------------------

MEMORIA_FUNCTION(memoria_check_rollup) {
    if (PG_ARGISNULL(0)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "name must not be NULL", NULL);
    check_still_fits(load_rollup(text_to_cstring(PG_GETARG_TEXT_PP(0))));
    PG_RETURN_VOID();
}

MEMORIA_FUNCTION(memoria_adopt_trigger) {
    record_dependency(TriggerRelationId, PG_GETARG_OID(0), RelationRelationId, PG_GETARG_OID(1), DEPENDENCY_AUTO);
    record_dependency(TriggerRelationId, PG_GETARG_OID(0), ExtensionRelationId, get_extension_oid("memoria", false),
                      DEPENDENCY_AUTO);
    PG_RETURN_VOID();
}

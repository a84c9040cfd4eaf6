// expressions.cpp: checking a rollup's measures and filter (expressions.hpp).
#include "args.hpp"
#include "expressions.hpp"

namespace memoria {

const char *const ARG_HINT_ALIAS =
    "Write each measure as 'aggregate(...) AS name', e.g. 'sum(input_tokens) AS input_tokens'.";

// ParsedItem: what raw parsing tells about a measure or the filter.
SelectStmt *parse_single_select(const char *sql, const char *what) {
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
Query *analyze_query(const char *sql, const char *what) {
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
// results depend only on settings a rollup session pins (TimeZone,
// DateStyle, IntervalStyle, lc_time, ...).  Not the text input functions
// ('now' and 'today' read the clock), nor those giving a time with time zone
// an offset from the current date.
static bool stable_but_pinned(Oid func) {
    if (func >= FirstNormalObjectId || get_func_namespace(func) != PG_CATALOG_NAMESPACE) return false;
    HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(func));
    if (!HeapTupleIsValid(tup)) return false;
    Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);
    char *name = pstrdup(NameStr(proc->proname));
    bool isnull;
    Datum src = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);
    char *c_name = isnull ? pstrdup("") : TextDatumGetCString(src);
    ReleaseSysCache(tup);
    size_t len = strlen(c_name);
    if ((len >= 3 && strcmp(c_name + len - 3, "_in") == 0) || strcmp(c_name, "time_timetz") == 0 ||
        strcmp(c_name, "timetz_zone") == 0)
        return false;
    static const char *const PREFIXES[] = {"date", "time", "interval", "to_char", "to_date", "to_timestamp",
                                           "make_timestamptz", "extract"};
    for (const char *prefix : PREFIXES)
        if (strncmp(name, prefix, strlen(prefix)) == 0) return true;
    return false;
}

// user_aggregate_support: the functions behind a user-defined aggregate
// (PostgreSQL labels every aggregate IMMUTABLE, whatever they do); NIL for
// anything else.  Built-in aggregates are trusted.
static List *user_aggregate_support(Oid func) {
    if (func < FirstNormalObjectId || get_func_prokind(func) != PROKIND_AGGREGATE) return NIL;
    HeapTuple tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(func));
    if (!HeapTupleIsValid(tup)) return NIL;
    Form_pg_aggregate a = (Form_pg_aggregate) GETSTRUCT(tup);
    Oid support[] = {a->aggtransfn, a->aggfinalfn, a->aggcombinefn, a->aggserialfn,
                     a->aggdeserialfn, a->aggmtransfn, a->aggminvtransfn, a->aggmfinalfn};
    ReleaseSysCache(tup);
    List *out = NIL;
    for (Oid f : support)
        if (OidIsValid(f)) out = list_append_unique_oid(out, f);
    return out;
}

// changeable_function: a function (operator, cast, aggregate, ...) whose
// result for the same arguments may change: neither IMMUTABLE nor a pinned
// date/time one (for a user's aggregate: any function behind it).
static bool changeable_function(Oid func, void *context) {
    ListCell *lc;
    foreach (lc, user_aggregate_support(func))
        if (changeable_function(lfirst_oid(lc), context)) return true;
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
char *deterministic_problem(Query *q, Node *raw) {
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

// check_deterministic: ERROR naming the argument unless deterministic, and
// calling only functions the caller (the rollup's owner to be) owns.
void check_deterministic(Query *q, Node *raw, const char *what) {
    char *problem = deterministic_problem(q, raw);
    if (problem)
        arg_error(ERRCODE_FEATURE_NOT_SUPPORTED, psprintf("%s %s", what, problem), DETERMINISTIC_HINT);
    problem = ownership_problem(q, GetUserId());
    if (problem)
        arg_error(ERRCODE_INSUFFICIENT_PRIVILEGE, psprintf("%s %s", what, problem),
                  "A rollup may call only its owner's functions (and built-in or extensions' ones): another role "
                  "could change or drop them under it.");
}

Measure check_measure(const char *text, int i, const char *src, const char *argname) {
    Measure m;
    m.text = pstrdup(text);
    char *what = psprintf("%s[%d] (%s)", argname, i, text);
    SelectStmt *sel = parse_single_select(psprintf("SELECT\n%s\n", text), what);
    ResTarget *rt = (ResTarget *) linitial(sel->targetList);
    if (rt->name == NULL)
        arg_error(ERRCODE_SYNTAX_ERROR, psprintf("%s[%d] (%s) has no alias", argname, i, text), ARG_HINT_ALIAS);
    m.alias = pstrdup(rt->name);
    Query *q = analyze_query(psprintf("SELECT\n%s\nFROM %s", text, src), what);
    TargetEntry *tle = (TargetEntry *) linitial(q->targetList);
    check_deterministic(q, (Node *) sel, psprintf("%s[%d] (%s)", argname, i, text));
    if (q->hasWindowFuncs || q->hasTargetSRFs)
        arg_error(ERRCODE_GROUPING_ERROR,
                  psprintf("%s[%d] (%s) must not use window or set-returning functions", argname, i, text),
                  ARG_HINT_ALIAS);
    if (!q->hasAggs || !contain_aggs_of_level((Node *) tle->expr, 0))
        arg_error(ERRCODE_GROUPING_ERROR, psprintf("%s[%d] (%s) is not an aggregate", argname, i, text),
                  ARG_HINT_ALIAS);
    m.type = exprType((Node *) tle->expr);
    m.typmod = exprTypmod((Node *) tle->expr);
    if (m.type == UNKNOWNOID || m.type == RECORDOID || get_typtype(m.type) == TYPTYPE_PSEUDO)
        arg_error(ERRCODE_DATATYPE_MISMATCH,
                  psprintf("%s[%d] (%s) has type %s, which a table column cannot have", argname, i, text,
                           format_type_be(m.type)),
                  "Cast the aggregate to a concrete type, e.g. 'sum(x)::bigint AS x'.");
    return m;
}

bool split_alias(const char *text, char **expr, char **alias_text) {
    int end = (int) strlen(text);
    while (end > 0 && isspace((unsigned char) text[end - 1])) end--;
    int start = end;
    if (start > 0 && text[start - 1] == '"') {  // a quoted alias: back to its opening quote ("" is a quote)
        int i = start - 2;
        while (i >= 0) {
            if (text[i] == '"') {
                if (i > 0 && text[i - 1] == '"') {
                    i -= 2;
                    continue;
                }
                break;
            }
            i--;
        }
        if (i < 0) return false;
        start = i;
    } else {
        while (start > 0 && (isalnum((unsigned char) text[start - 1]) || text[start - 1] == '_' ||
                             IS_HIGHBIT_SET(text[start - 1])))
            start--;
    }
    if (start == end) return false;
    int as = start;
    while (as > 0 && isspace((unsigned char) text[as - 1])) as--;
    if (as == start || as < 3 || pg_strncasecmp(text + as - 2, "as", 2) != 0) return false;
    char before = text[as - 3];
    if (isalnum((unsigned char) before) || before == '_') return false;  // "... bas x": not AS
    // (Not a line break: it may end a comment.)
    int len = as - 2;
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t')) len--;
    *expr = pnstrdup(text, len);
    if (alias_text) *alias_text = pnstrdup(text + start, end - start);
    return true;
}

Dimension check_dimension(const char *text, int i, const char *src) {
    Dimension d;
    char *what = psprintf("dimensions[%d] (%s)", i, text);
    const char *hint = "A dimension is a column name, or an expression with an alias: 'lower(model) AS model'.";
    SelectStmt *sel = parse_single_select(psprintf("SELECT\n%s\n", text), what);
    ResTarget *rt = (ResTarget *) linitial(sel->targetList);
    char *alias_text;
    if (rt->name == NULL || !split_alias(text, &d.expr, &alias_text))
        arg_error(ERRCODE_SYNTAX_ERROR, psprintf("%s has no alias", what), hint);
    d.alias = pstrdup(rt->name);
    // The expression alone must be one expression too (it is pasted alone),
    // and the alias the one split off.
    SelectStmt *bare = parse_single_select(psprintf("SELECT\n%s\n", d.expr), what);
    SelectStmt *again = parse_single_select(psprintf("SELECT\n(\n%s\n) AS %s", d.expr, alias_text), what);
    if (((ResTarget *) linitial(bare->targetList))->name != NULL ||
        strcmp(((ResTarget *) linitial(again->targetList))->name, d.alias) != 0)
        arg_error(ERRCODE_SYNTAX_ERROR, psprintf("%s must be written 'expression AS alias'", what), hint);
    Query *q = analyze_query(psprintf("SELECT\n(\n%s\n)\nFROM %s", d.expr, src), what);
    TargetEntry *tle = (TargetEntry *) linitial(q->targetList);
    check_deterministic(q, (Node *) bare, what);
    if (q->hasAggs || q->hasWindowFuncs || q->hasTargetSRFs)
        arg_error(ERRCODE_GROUPING_ERROR,
                  psprintf("%s must not use aggregate, window or set-returning functions", what),
                  "Dimensions group the source rows; aggregates go in measures.");
    d.type = exprType((Node *) tle->expr);
    d.typmod = exprTypmod((Node *) tle->expr);
    d.collation = exprCollation((Node *) tle->expr);
    if (d.type == UNKNOWNOID || d.type == RECORDOID || get_typtype(d.type) == TYPTYPE_PSEUDO)
        arg_error(ERRCODE_DATATYPE_MISMATCH,
                  psprintf("%s has type %s, which a table column cannot have", what, format_type_be(d.type)),
                  "Cast the expression to a concrete type, e.g. '(payload->>''team'')::text AS team'.");
    if (!OidIsValid(lookup_type_cache(d.type, TYPECACHE_BTREE_OPFAMILY)->btree_opf))
        arg_error(ERRCODE_UNDEFINED_FUNCTION,
                  psprintf("%s has type %s, which has no ordering (the rollup table's key is a btree index)", what,
                           format_type_be(d.type)),
                  "Cast the expression to a type with one, e.g. text.");
    return d;
}

void check_filter(const char *filter, const char *src) {
    SelectStmt *sel = parse_single_select(psprintf("SELECT 1 WHERE\n%s\n", filter), "filter");
    Query *q = analyze_query(psprintf("SELECT 1 FROM %s WHERE (\n%s\n)", src, filter), "filter");
    check_deterministic(q, (Node *) sel, "filter");
}

// expressions_word: what the user's expressions are, for messages.
static const char *expressions_word(const Rollup *r) {
    for (int i = 0; r->dim_exprs && i < r->ndims; i++)
        if (r->dim_exprs[i]) return "measures, dimension expressions or filter";
    return "measures or filter";
}

// analyze_expressions: the rollup's measures and filter as one analysed
// query over its source, as its owner with its recorded settings; with
// *raw its raw parse tree.  On failure, NULL and *problem says why.
Query *analyze_expressions(const Rollup *r, Node **raw, char **problem) {
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfoString(&sql, "SELECT\n");
    for (int i = 0; i < r->nmeasures; i++) appendStringInfo(&sql, "%s%s\n", i ? ",\n" : "", r->measures[i]);
    int nexprs = 0;
    for (int i = 0; r->dim_exprs && i < r->ndims; i++)
        if (r->dim_exprs[i]) {
            appendStringInfo(&sql, ",\n(\n%s\n)\n", r->dim_exprs[i]);
            nexprs++;
        }
    appendStringInfo(&sql, "FROM %s", qualified_relation_name(r->source));
    if (r->filter) appendStringInfo(&sql, " WHERE (\n%s\n)", r->filter);
    for (int k = 0; k < nexprs; k++) appendStringInfo(&sql, "%s%d", k ? ", " : " GROUP BY ", r->nmeasures + 1 + k);
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
        // A cancel, a shutdown or a lack of memory is not the expressions' fault.
        if (e->sqlerrcode == ERRCODE_QUERY_CANCELED || e->sqlerrcode == ERRCODE_OUT_OF_MEMORY ||
            ERRCODE_TO_CATEGORY(e->sqlerrcode) == ERRCODE_OPERATOR_INTERVENTION)
            ReThrowError(e);
        *problem = psprintf("its %s would fail: %s", expressions_word(r), e->message);
        q = NULL;
    }
    PG_END_TRY();
    leave_rollup_session(session);
    return q;
}

// expressions_problem: the measures (and filter) must still analyse to the
// types of the rollup's columns, and still be deterministic.
char *expressions_problem(const Rollup *r) {
    Node *raw;
    char *problem;
    Query *q = analyze_expressions(r, &raw, &problem);
    if (q == NULL) return problem;
    int i = 0, dim = 0;
    ListCell *lc;
    foreach (lc, q->targetList) {
        TargetEntry *tle = (TargetEntry *) lfirst(lc);
        // The measures, then the dimension expressions.
        bool is_measure = i < r->nmeasures;
        while (!is_measure && r->dim_exprs[dim] == NULL) dim++;
        AttrNumber column = is_measure ? r->target_attnums[1 + r->ndims + i] : r->target_attnums[1 + dim];
        Oid want;
        int32 want_typmod;
        Oid coll;
        get_atttypetypmodcoll(r->target, column, &want, &want_typmod, &coll);
        Oid got = exprType((Node *) tle->expr);
        if (got != want)
            return psprintf("its %s \"%s\" (of type %s) and its column (of type %s) would differ in type",
                            is_measure ? "measure" : "dimension",
                            is_measure ? r->measure_names[i] : get_attname(r->target, column, false),
                            format_type_be(got), format_type_be(want));
        if (!is_measure) dim++;
        i++;
    }
    problem = deterministic_problem(q, raw);
    if (problem == NULL) problem = ownership_problem(q, r->owner);
    return problem ? psprintf("its %s %s", expressions_word(r), problem) : NULL;
}

// session_dependent: a STABLE function (an allowed one is a built-in
// date/time function: it reads TimeZone, DateStyle, ...), or one behind a
// user's aggregate.
static bool session_dependent(Oid func, void *context) {
    ListCell *lc;
    foreach (lc, user_aggregate_support(func))
        if (session_dependent(lfirst_oid(lc), context)) return true;
    return func_volatile(func) == PROVOLATILE_STABLE;
}

static bool session_walker(Node *node, void *context) {
    if (node == NULL) return false;
    if (check_functions_in_node(node, session_dependent, context)) return true;
    if (IsA(node, Query)) return query_tree_walker((Query *) node, WALKER(session_walker), context, 0);
    return expression_tree_walker(node, WALKER(session_walker), context);
}

bool expressions_read_session(const Rollup *r) {
    Node *raw;
    char *problem;
    Query *q = analyze_expressions(r, &raw, &problem);
    return q == NULL || query_tree_walker(q, WALKER(session_walker), NULL, 0);
}

// collect_function: the user's functions called (with those behind a
// user's aggregate).
static bool collect_function(Oid func, void *context) {
    List **funcs = (List **) context;
    if (func < FirstNormalObjectId || list_member_oid(*funcs, func)) return false;
    *funcs = lappend_oid(*funcs, func);
    ListCell *lc;
    foreach (lc, user_aggregate_support(func)) (void) collect_function(lfirst_oid(lc), context);
    return false;
}

static bool collect_walker(Node *node, void *context) {
    if (node == NULL) return false;
    (void) check_functions_in_node(node, collect_function, context);
    if (IsA(node, Query)) return query_tree_walker((Query *) node, WALKER(collect_walker), context, 0);
    return expression_tree_walker(node, WALKER(collect_walker), context);
}

// user_functions: the user's functions the analysed expression calls.
static List *user_functions(Query *q) {
    List *funcs = NIL;
    (void) query_tree_walker(q, WALKER(collect_walker), &funcs, 0);
    return funcs;
}

char *ownership_problem(Query *q, Oid owner) {
    ListCell *lc;
    foreach (lc, user_functions(q)) {
        Oid func = lfirst_oid(lc);
        if (OidIsValid(getExtensionOfObject(ProcedureRelationId, func))) continue;
        HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(func));
        if (!HeapTupleIsValid(tup)) continue;
        Oid proowner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
        ReleaseSysCache(tup);
        if (!has_privs_of_role(owner, proowner))
            return psprintf("calls %s, which belongs to role \"%s\"", format_procedure(func),
                            GetUserNameFromId(proowner, false));
    }
    return NULL;
}

// record_function_dependencies: the rollup table depends on every function
// of the user's its expressions call, as a view does: DROP FUNCTION then
// needs CASCADE, and a CREATE OR REPLACE of one rebuilds the rollup.
void record_function_dependencies(const Rollup *r) {
    Node *raw;
    char *problem;
    Query *q = analyze_expressions(r, &raw, &problem);
    if (q == NULL) elog(ERROR, "memoria: %s", problem);
    List *funcs = user_functions(q);
    deleteDependencyRecordsForClass(RelationRelationId, r->target, ProcedureRelationId, DEPENDENCY_NORMAL);
    ListCell *lc;
    foreach (lc, funcs)
        record_dependency(RelationRelationId, r->target, ProcedureRelationId, lfirst_oid(lc), DEPENDENCY_NORMAL);
}

}  // namespace memoria

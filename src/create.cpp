// create.cpp: memoria.create_rollup() and memoria.drop_rollup().
//
// create_rollup validates every argument before it creates anything; every
// error names the argument, has a SQLSTATE and a hint (step 1, into a
// NewRollup).  It then creates, in the caller's transaction (so an error
// leaves nothing behind), each step under one identity:
//   - the rollup table (bucket, dimensions, measures; primary key on bucket
//     and dimensions, or UNIQUE NULLS NOT DISTINCT when a dimension is
//     nullable): as the caller in its own schema, or by the extension's owner
//     in memoria_rollup and handed to the caller;
//   - the dirty log (dirty_log.cpp) and the catalog rows (catalog.cpp): as
//     the extension's owner;
//   - the capture triggers (triggers.cpp) and the dependencies: the rollup
//     table depends on the source (DROP TABLE source needs CASCADE and names
//     it) and on the user's functions its expressions call; the dirty log and
//     the triggers go with the rollup table; all of it with DROP EXTENSION.
#include "adopt.hpp"
#include "args.hpp"
#include "citus.hpp"
#include "ddl_guard.hpp"
#include <initializer_list>
#include "additive.hpp"
#include "dirty_log.hpp"
#include "expressions.hpp"
#include "guard.hpp"
#include "horizon.hpp"
#include "statements.hpp"
#include "triggers.hpp"
#include "view_source.hpp"
#include "worker.hpp"

namespace memoria {

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
                  strcmp(argname, "dimensions") == 0
                      ? "Column names are case sensitive and given without quotes, e.g. 'workspace_id'; an expression "
                        "needs an alias: 'lower(model) AS model'."
                      : "Column names are case sensitive and given without quotes, e.g. 'workspace_id'.");
    return a;
}


// NewRollup: create_rollup's arguments once validated.
// What a call makes: a whole rollup; only its table, distributed and
// recorded as a rollup of a Citus table (citus.hpp); a rollup of one shard
// into the rollup table's co-located shard, which exists already; or
// nothing: the arguments are checked against the source as it is now.
enum class CreateMode { Whole, TableOnly, IntoShard, Validate };

struct NewRollup {
    CreateMode mode;
    Rollup r;             // the catalog row to be (id, target, dirty_log: later)
    char *src;            // the source, quoted
    char *time_column;
    List *dim_names;      // the rollup table's dimension columns (a column's name, or an expression's alias)
    List *dims, *scope;   // attribute numbers (0 for an expression)
    List *dim_exprs;      // per dimension, its Dimension * (NULL for a column)
    bool dims_not_null;
    List *measures;       // of Measure *
    ViewJoin *join;       // a view source's join (NULL: a table)
    bool default_target;  // memoria_rollup.<name>
    RangeVar *target_rv;
    Oid target_nsp;
    char *target_sql;
};

static void check_name_and_source(FunctionCallInfo fcinfo, NewRollup *n) {
    n->r.name = required_text(fcinfo, 0, "name");
    if (n->r.name[0] == '\0' || strlen(n->r.name) >= NAMEDATALEN - 1)
        arg_error(ERRCODE_INVALID_NAME,
                  psprintf("name \"%s\" must be 1 to %d bytes long", n->r.name, NAMEDATALEN - 2),
                  "The name is also the default rollup table's name, so it follows identifier limits.");
    if (PG_ARGISNULL(1)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "source must not be NULL", NULL);
    Oid source = PG_GETARG_OID(1);
    char relkind = get_rel_relkind(source);
    if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE && relkind != RELKIND_VIEW)
        arg_error(ERRCODE_WRONG_OBJECT_TYPE,
                  psprintf("source %s is not a table or a view", qualified_relation_name(source)),
                  "A rollup's source must be a table, a partitioned table, or a view joining a fact table to others.");
    if (!pg_class_ownercheck(source, GetUserId()))
        arg_error(ERRCODE_INSUFFICIENT_PRIVILEGE,
                  psprintf("source: must be owner of %s %s", relkind == RELKIND_VIEW ? "view" : "table",
                           qualified_relation_name(source)),
                  "Only the owner of a table (or a superuser) may define a rollup on it.");
    // Hold off concurrent DDL and writers until the triggers exist.
    LockRelationOid(source, ShareRowExclusiveLock);
    const char *hint;
    if (char *problem = source_problem(source, &hint))
        arg_error(ERRCODE_FEATURE_NOT_SUPPORTED, psprintf("source %s %s", qualified_relation_name(source), problem),
                  hint);
    n->r.source = source;
    n->src = qualified_relation_name(source);
}

static void warn_missing_indexes(const NewRollup *n);

// check_view_tables: a view source must have the shape memoria follows
// (view_source.cpp), and the caller must own each of its tables, which get
// capture triggers; they are locked like a table source.
static void check_view_tables(NewRollup *n) {
    char *problem;
    const char *hint;
    n->join = analyze_view_source(n->r.source, n->r.time_attnum, &problem, &hint);
    if (n->join == NULL)
        arg_error(ERRCODE_FEATURE_NOT_SUPPORTED, psprintf("source view %s %s", n->src, problem), hint);
    List *tables = list_make1_oid(n->join->fact);
    for (int t = 0; t < n->join->ntables; t++) tables = lappend_oid(tables, n->join->tables[t].rel);
    ListCell *lc;
    foreach (lc, tables) {
        Oid rel = lfirst_oid(lc);
        if (!pg_class_ownercheck(rel, GetUserId()))
            arg_error(ERRCODE_INSUFFICIENT_PRIVILEGE,
                      psprintf("source: must be owner of table %s, which view %s reads", qualified_relation_name(rel),
                               n->src),
                      "memoria captures the writes to every table of a view source: the caller must own them all.");
        LockRelationOid(rel, ShareRowExclusiveLock);
        if (char *problem = source_problem(rel, &hint))
            arg_error(ERRCODE_FEATURE_NOT_SUPPORTED,
                      psprintf("table %s, which view %s reads, %s", qualified_relation_name(rel), n->src, problem), hint);
    }
    warn_missing_indexes(n);
}

// leading_index: whether rel has an index whose first column is `column`.
static bool leading_index(Oid rel, AttrNumber column) {
    Relation r = table_open(rel, AccessShareLock);
    List *indexes = RelationGetIndexList(r);
    table_close(r, AccessShareLock);
    ListCell *lc;
    foreach (lc, indexes) {
        HeapTuple tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
        if (!HeapTupleIsValid(tup)) continue;
        Form_pg_index idx = (Form_pg_index) GETSTRUCT(tup);
        bool leads = idx->indnkeyatts > 0 && idx->indkey.values[0] == column;
        ReleaseSysCache(tup);
        if (leads) return true;
    }
    return false;
}

// warn_missing_indexes: a write to a joined table is found in the fact rows
// through its parent's join column (task_usage.task_id for a change of a
// task): without an index there, every refresh after such a write reads the
// whole parent table.
static void warn_missing_indexes(const NewRollup *n) {
    for (int t = 0; t < n->join->ntables; t++) {
        const LinkedTable &lt = n->join->tables[t];
        Oid parent = lt.parent < 0 ? n->join->fact : n->join->tables[lt.parent].rel;
        if (leading_index(parent, lt.parent_keys[0])) continue;
        const char *col = quote_identifier(get_attname(parent, lt.parent_keys[0], false));
        ereport(WARNING, (errcode(ERRCODE_WARNING),
                          errmsg("table %s has no index on %s: a refresh after a write to %s reads all of it",
                                 qualified_relation_name(parent), col, qualified_relation_name(lt.rel)),
                          errhint("CREATE INDEX ON %s (%s);", qualified_relation_name(parent), col)));
    }
}

static void check_time_column(FunctionCallInfo fcinfo, NewRollup *n) {
    n->time_column = required_text(fcinfo, 2, "time_column");
    n->r.time_attnum = source_column(n->r.source, n->time_column, "time_column");
    n->r.time_type = get_atttype(n->r.source, n->r.time_attnum);
    if (!time_kind_of(n->r.time_type, &n->r.kind))
        arg_error(ERRCODE_DATATYPE_MISMATCH,
                  psprintf("time_column \"%s\" has type %s", n->time_column, format_type_be(n->r.time_type)),
                  "The time column must be timestamptz, timestamp or date.");
    if (get_rel_relkind(n->r.source) == RELKIND_VIEW) check_view_tables(n);
}

static void check_dimensions_and_scope(FunctionCallInfo fcinfo, NewRollup *n) {
    if (PG_ARGISNULL(3))
        arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "dimensions must not be NULL",
                  "Use ARRAY[]::text[] for a rollup with no dimensions.");
    n->dims_not_null = true;
    ListCell *lc;
    int i = 0;
    foreach (lc, text_array_arg(fcinfo, 3, "dimensions")) {
        const char *d = (const char *) lfirst(lc);
        i++;
        char *expr;
        const char *name = d;  // the rollup table's column
        if (get_attnum(n->r.source, d) <= 0 && split_alias(d, &expr)) {
            // An expression: 'lower(model) AS model'.
            Dimension *dim = (Dimension *) palloc(sizeof(Dimension));
            *dim = check_dimension(d, i, n->src);
            name = dim->alias;
            n->dims = lappend_int(n->dims, 0);
            n->dim_exprs = lappend(n->dim_exprs, dim);
            n->dims_not_null = false;
        } else {
            AttrNumber a = source_column(n->r.source, d, "dimensions");
            if (a == n->r.time_attnum)
                arg_error(ERRCODE_INVALID_COLUMN_REFERENCE,
                          psprintf("dimensions must not include the time_column \"%s\"", d),
                          "The time column is rolled up into the bucket column.");
            if (list_member_int(n->dims, a))
                arg_error(ERRCODE_DUPLICATE_COLUMN, psprintf("dimensions lists column \"%s\" twice", d), NULL);
            n->dims = lappend_int(n->dims, a);
            n->dim_exprs = lappend(n->dim_exprs, NULL);
            HeapTuple tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(n->r.source), Int16GetDatum(a));
            if (!((Form_pg_attribute) GETSTRUCT(tup))->attnotnull) n->dims_not_null = false;
            ReleaseSysCache(tup);
        }
        if (strcmp(name, "bucket") == 0)
            arg_error(ERRCODE_DUPLICATE_COLUMN,
                      "dimensions: a column named \"bucket\" would clash with the rollup's bucket column",
                      "Give the dimension another alias, or roll up a view or a renamed column.");
        ListCell *lc2;
        foreach (lc2, n->dim_names)
            if (strcmp((const char *) lfirst(lc2), name) == 0)
                arg_error(ERRCODE_DUPLICATE_COLUMN, psprintf("dimensions lists column \"%s\" twice", name),
                          "Give each dimension its own name.");
        n->dim_names = lappend(n->dim_names, pstrdup(name));
    }
    // A view source's keys hold fact columns only (view_source.hpp).
    // (Expressions are never part of it: capture reads columns.)
    auto fact_column = [n](AttrNumber a) { return a > 0 && (n->join == NULL || n->join->fact_attnum[a - 1] != 0); };
    if (PG_ARGISNULL(7)) {
        foreach (lc, n->dims)
            if (fact_column((AttrNumber) lfirst_int(lc))) n->scope = lappend_int(n->scope, lfirst_int(lc));
        return;
    }
    foreach (lc, text_array_arg(fcinfo, 7, "scope")) {
        const char *s = (const char *) lfirst(lc);
        AttrNumber a = get_attnum(n->r.source, s);
        if (a <= 0 || !list_member_int(n->dims, a)) {
            bool expression = false;
            ListCell *lc2;
            foreach (lc2, n->dim_names) expression = expression || strcmp((const char *) lfirst(lc2), s) == 0;
            arg_error(ERRCODE_INVALID_COLUMN_REFERENCE,
                      expression ? psprintf("scope column \"%s\" is a dimension expression", s)
                                 : psprintf("scope column \"%s\" is not one of the dimensions", s),
                      expression ? "The scope is drawn from dimensions that are columns: the capture triggers read "
                                   "columns, not expressions."
                                 : "scope must be a subset of dimensions (NULL means all of them).");
        }
        if (list_member_int(n->scope, a))
            arg_error(ERRCODE_DUPLICATE_COLUMN, psprintf("scope lists column \"%s\" twice", s), NULL);
        if (!fact_column(a))
            arg_error(ERRCODE_FEATURE_NOT_SUPPORTED,
                      psprintf("scope column \"%s\" is not a column of the fact table %s as the view shows it", s,
                               qualified_relation_name(n->join->fact)),
                      "A view source's scope is drawn from the dimensions the fact table holds (the default).");
        n->scope = lappend_int(n->scope, a);
    }
}

static void check_measures(FunctionCallInfo fcinfo, NewRollup *n) {
    if (PG_ARGISNULL(4)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "measures must not be NULL", ARG_HINT_ALIAS);
    List *texts = text_array_arg(fcinfo, 4, "measures");
    if (texts == NIL)
        arg_error(ERRCODE_INVALID_PARAMETER_VALUE, "measures must list at least one aggregate", ARG_HINT_ALIAS);
    List *aliases = NIL;
    int i = 0;
    ListCell *lc;
    foreach (lc, texts) {
        Measure *m = (Measure *) palloc(sizeof(Measure));
        *m = check_measure((const char *) lfirst(lc), ++i, n->src);
        ListCell *lc2;
        bool clash = strcmp(m->alias, "bucket") == 0;
        foreach (lc2, aliases) clash = clash || strcmp((const char *) lfirst(lc2), m->alias) == 0;
        foreach (lc2, n->dim_names) clash = clash || strcmp((const char *) lfirst(lc2), m->alias) == 0;
        if (clash)
            arg_error(ERRCODE_DUPLICATE_COLUMN,
                      psprintf("measures[%d]: alias \"%s\" is already used by the bucket, a dimension or another "
                               "measure", i, m->alias),
                      "Give every measure its own alias.");
        n->measures = lappend(n->measures, m);
        aliases = lappend(aliases, m->alias);
    }
    n->r.nmeasures = list_length(n->measures);
    n->r.measures = (char **) palloc(n->r.nmeasures * sizeof(char *));
    n->r.measure_names = (char **) palloc(n->r.nmeasures * sizeof(char *));
    i = 0;
    foreach (lc, n->measures) {
        n->r.measures[i] = ((Measure *) lfirst(lc))->text;
        n->r.measure_names[i++] = ((Measure *) lfirst(lc))->alias;
    }
}

static void check_bucket_and_filter(FunctionCallInfo fcinfo, NewRollup *n) {
    if (PG_ARGISNULL(5)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "bucket must not be NULL", NULL);
    n->r.bucket = *PG_GETARG_INTERVAL_P(5);
    n->r.width_usecs = check_bucket_width(&n->r.bucket, n->r.kind);
    n->r.time_zone = required_text(fcinfo, 6, "time_zone");
    lookup_time_zone(n->r.time_zone);
    n->r.filter = PG_ARGISNULL(8) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(8));
    if (n->r.filter != NULL) check_filter(n->r.filter, n->src);
}

static void check_invalidation(FunctionCallInfo fcinfo, NewRollup *n) {
    char *invalidation = required_text(fcinfo, 9, "invalidation");
    bool updated_at_mode = strcmp(invalidation, "updated_at") == 0;
    if (!updated_at_mode && strcmp(invalidation, "trigger") != 0)
        arg_error(ERRCODE_INVALID_PARAMETER_VALUE,
                  psprintf("invalidation must be 'trigger' or 'updated_at', not '%s'", invalidation), NULL);
    if (!updated_at_mode && !PG_ARGISNULL(10))
        arg_error(ERRCODE_INVALID_PARAMETER_VALUE, "updated_at_column is only used with invalidation => 'updated_at'",
                  "Leave updated_at_column NULL in trigger mode.");
    if (updated_at_mode && n->join != NULL)
        arg_error(ERRCODE_FEATURE_NOT_SUPPORTED, "invalidation 'updated_at' is not supported for a view source",
                  "Use invalidation => 'trigger' (the default): every table of the view is captured by triggers.");
    if (updated_at_mode) {
        if (PG_ARGISNULL(10))
            arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "updated_at_column is required when invalidation = 'updated_at'",
                      "Name a timestamptz NOT NULL column that every INSERT and UPDATE sets to now().");
        char *u = text_to_cstring(PG_GETARG_TEXT_PP(10));
        AttrNumber a = get_attnum(n->r.source, u);
        if (a <= 0)
            arg_error(ERRCODE_UNDEFINED_COLUMN, psprintf("updated_at_column \"%s\" does not exist in %s", u, n->src),
                      NULL);
        HeapTuple tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(n->r.source), Int16GetDatum(a));
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
        if (!catalog_has_column("rollup_state", "scanned_through"))
            arg_error(ERRCODE_FEATURE_NOT_SUPPORTED, "invalidation 'updated_at' needs memoria 0.2.0 or later",
                      "Run ALTER EXTENSION memoria UPDATE.");
        n->r.updated_at_attnum = a;
    }
    if (PG_ARGISNULL(11)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "safety_lag must not be NULL", NULL);
    n->r.safety_lag = *PG_GETARG_INTERVAL_P(11);
    if (n->r.safety_lag.month < 0 || n->r.safety_lag.day < 0 || n->r.safety_lag.time < 0)
        arg_error(ERRCODE_INVALID_PARAMETER_VALUE, "safety_lag must not be negative", NULL);
}

// resolve_target: default memoria_rollup.<name>, or the given (possibly
// qualified) name; it must not exist yet.
static void resolve_target(FunctionCallInfo fcinfo, NewRollup *n) {
    n->default_target = PG_ARGISNULL(12);
    if (n->default_target) {
        n->target_rv = makeRangeVar(pstrdup("memoria_rollup"), n->r.name, -1);
    } else {
        char *t = text_to_cstring(PG_GETARG_TEXT_PP(12));
        MemoryContext mcxt = CurrentMemoryContext;
        PG_TRY();
        { n->target_rv = makeRangeVarFromNameList(stringToQualifiedNameList(t)); }
        PG_CATCH();
        {
            MemoryContextSwitchTo(mcxt);
            FlushErrorState();
            arg_error(ERRCODE_INVALID_NAME, psprintf("target \"%s\" is not a valid table name", t),
                      "Give a table name, optionally schema-qualified, e.g. 'analytics.usage_daily'.");
        }
        PG_END_TRY();
    }
    n->target_nsp = RangeVarGetCreationNamespace(n->target_rv);
    n->target_sql = quote_qualified_identifier(get_namespace_name(n->target_nsp), n->target_rv->relname);
    if (n->mode == CreateMode::IntoShard) return;  // check_shard_target, later
    // (A table named in memoria_rollup is made there as the default one is:
    // a distributed rollup's partial mode names its tables there.)
    if (n->target_nsp == get_namespace_oid("memoria_rollup", true)) n->default_target = true;
    if (OidIsValid(get_relname_relid(n->target_rv->relname, n->target_nsp)))
        arg_error(ERRCODE_DUPLICATE_TABLE, psprintf("target table %s already exists", n->target_sql),
                  "memoria creates the rollup table itself; choose another name or drop the table.");
    if (isAnyTempNamespace(n->target_nsp))
        arg_error(ERRCODE_FEATURE_NOT_SUPPORTED, "target must not be a temporary table",
                  "A rollup outlives the session; give a table name in a permanent schema.");
}

// check_plans: the whole aggregate statement must plan, as the caller with
// its search_path.
static void check_plans(const NewRollup *n) {
    StringInfoData q;
    initStringInfo(&q);
    appendStringInfo(&q, "SELECT memoria.bucket(%s, $1, $2)", quote_identifier(n->time_column));
    ListCell *lc;
    ListCell *lc2;
    forboth (lc, n->dim_names, lc2, n->dim_exprs) {
        const Dimension *dim = (const Dimension *) lfirst(lc2);
        if (dim) appendStringInfo(&q, ",\n(\n%s\n)\n", dim->expr);
        else appendStringInfo(&q, ", %s", quote_identifier((const char *) lfirst(lc)));
    }
    foreach (lc, n->measures) appendStringInfo(&q, ",\n%s\n", ((Measure *) lfirst(lc))->text);
    appendStringInfo(&q, "FROM %s", n->src);
    if (n->r.filter) appendStringInfo(&q, " WHERE (\n%s\n)", n->r.filter);
    appendStringInfoString(&q, " GROUP BY 1");
    for (int k = 0; k < list_length(n->dims); k++) appendStringInfo(&q, ", %d", k + 2);
    Oid types[2] = {INTERVALOID, TEXTOID};
    SPI_connect();
    if (SPI_prepare(q.data, 2, types) == NULL)
        elog(ERROR, "could not prepare the rollup's aggregate statement: %s", q.data);
    SPI_finish();
}

static Oid shard_target(const NewRollup *n);

// create_rollup_table: the rollup table; returns it.  (The search_path is
// pinned already: the type and collation names below are written for it.)
static Oid create_rollup_table(const NewRollup *n) {
    if (n->mode == CreateMode::IntoShard) return shard_target(n);
    StringInfoData ddl;
    initStringInfo(&ddl);
    appendStringInfo(&ddl, "CREATE TABLE %s (bucket %s NOT NULL", n->target_sql, format_type_be(n->r.time_type));
    ListCell *lc, *lc2, *lc3;
    forthree (lc, n->dims, lc2, n->dim_names, lc3, n->dim_exprs) {
        const Dimension *dim = (const Dimension *) lfirst(lc3);
        char *type = dim ? format_type_with_typemod(dim->type, dim->typmod) : column_type_sql(n->r.source, lfirst_int(lc));
        if (dim && OidIsValid(dim->collation) && dim->collation != get_typcollation(dim->type))
            type = psprintf("%s COLLATE %s", type, generate_collation_name(dim->collation));
        appendStringInfo(&ddl, ", %s %s", quote_identifier((const char *) lfirst(lc2)), type);
    }
    foreach (lc, n->measures) {
        Measure *m = (Measure *) lfirst(lc);
        appendStringInfo(&ddl, ", %s %s", quote_identifier(m->alias), format_type_with_typemod(m->type, m->typmod));
    }
    // The key's columns: the bucket, the scope, then the other dimensions, so
    // that a refresh finds a dirty key's rows by a prefix of the index.
    appendStringInfoString(&ddl, n->dims_not_null ? ", PRIMARY KEY (bucket" : ", UNIQUE NULLS NOT DISTINCT (bucket");
    for (int pass = 0; pass < 2; pass++)
        forboth (lc, n->dims, lc2, n->dim_names) {
            bool in_scope = lfirst_int(lc) > 0 && list_member_int(n->scope, lfirst_int(lc));
            if (in_scope == (pass == 0))
                appendStringInfo(&ddl, ", %s", quote_identifier((const char *) lfirst(lc2)));
        }
    // Free space on each page: a refresh rewrites rows in place, and an
    // update that fits on its page is HOT (no index insertion, half the cost).
    appendStringInfoString(&ddl, ")) WITH (fillfactor = 80)");
    // Dashboards read one value of the first dimension (a tenant) over a
    // range of buckets: an index on both serves them (the key leads with
    // the bucket).  A refresh's rewrites of measures stay HOT.
    char *index_ddl = NULL;
    if (n->dim_names != NIL)
        index_ddl = psprintf("CREATE INDEX ON %s (%s, bucket)", n->target_sql,
                             quote_identifier((const char *) linitial(n->dim_names)));
    const char *owner = quote_identifier(GetUserNameFromId(n->r.owner, false));
    // In memoria_rollup the extension's owner creates the table and hands it
    // to the caller; elsewhere the caller's rights apply.
    List *as_extension = NIL, *as_caller = NIL;
    if (n->default_target) {
        // CREATE there too, which indexes on the table (and renaming it)
        // need (adopt.cpp settle_schema_grant takes it back).
        as_extension = list_make1(ddl.data);
        if (index_ddl) as_extension = lappend(as_extension, index_ddl);
        as_extension = lappend(as_extension, psprintf("ALTER TABLE %s OWNER TO %s", n->target_sql, owner));
        as_extension = lappend(as_extension, psprintf("GRANT CREATE ON SCHEMA memoria_rollup TO %s", owner));
    } else {
        as_caller = list_make1(ddl.data);
        if (index_ddl) as_caller = lappend(as_caller, index_ddl);
    }
    as_extension = lappend(as_extension, psprintf("COMMENT ON TABLE %s IS %s", n->target_sql,
                                                  quote_literal_cstr(psprintf("memoria rollup %s of %s", n->r.name,
                                                                              n->src))));
    // What each column holds, for \d+ and schema browsers.
    char *width = DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(&n->r.bucket)));
    as_extension = lappend(as_extension, psprintf("COMMENT ON COLUMN %s.bucket IS %s", n->target_sql,
                                                  quote_literal_cstr(psprintf("memoria bucket: start of each %s of %s%s",
                                                                              width, n->time_column,
                                                                              n->r.kind == TimeKind::Timestamptz
                                                                                  ? psprintf(" in %s", n->r.time_zone)
                                                                                  : ""))));
    forboth (lc, n->dim_names, lc2, n->dim_exprs) {
        const char *col = quote_identifier((const char *) lfirst(lc));
        const Dimension *dim = (const Dimension *) lfirst(lc2);
        char *comment = dim ? psprintf("memoria dimension: %s", dim->expr) : psprintf("memoria dimension: %s.%s", n->src, col);
        as_extension = lappend(as_extension, psprintf("COMMENT ON COLUMN %s.%s IS %s", n->target_sql, col,
                                                      quote_literal_cstr(comment)));
    }
    foreach (lc, n->measures) {
        Measure *m = (Measure *) lfirst(lc);
        as_extension = lappend(as_extension, psprintf("COMMENT ON COLUMN %s.%s IS %s", n->target_sql,
                                                      quote_identifier(m->alias),
                                                      quote_literal_cstr(psprintf("memoria measure: %s", m->text))));
    }
    // Published by a FOR ALL TABLES publication, its UPDATEs and DELETEs
    // need a replica identity: without a primary key, the whole row.
    if (!n->dims_not_null)
        as_extension = lappend(as_extension, psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", n->target_sql));
    SPI_connect();
    foreach (lc, as_caller) spi_exec((const char *) lfirst(lc), 0, NULL, NULL, NULL, false);
    CatalogSession cs = enter_catalog_session();
    foreach (lc, as_extension) {
        spi_exec((const char *) lfirst(lc), 0, NULL, NULL, NULL, false);
        CommandCounterIncrement();
    }
    leave_catalog_session(cs);
    SPI_finish();
    CommandCounterIncrement();
    Oid target = get_relname_relid(n->target_rv->relname, n->target_nsp);
    record_dependency(RelationRelationId, target, RelationRelationId, n->r.source, DEPENDENCY_NORMAL);
    // A plain (not automatic) dependency: DROP EXTENSION memoria refuses
    // while rollups exist, naming them; with CASCADE they go too.
    record_dependency(RelationRelationId, target, ExtensionRelationId, get_extension_oid("memoria", false),
                      DEPENDENCY_NORMAL);
    return target;
}

// has_rollup_columns: whether table has exactly the columns this rollup's
// table would have, by name and type, in order.
static bool has_rollup_columns(const NewRollup *n, Oid table) {
    List *want = list_make1(psprintf("bucket %s", format_type_be(n->r.time_type)));
    ListCell *lc, *lc2, *lc3;
    forthree (lc, n->dims, lc2, n->dim_names, lc3, n->dim_exprs) {
        const Dimension *dim = (const Dimension *) lfirst(lc3);
        char *type = dim ? format_type_with_typemod(dim->type, dim->typmod) : column_type_sql(n->r.source, lfirst_int(lc));
        want = lappend(want, psprintf("%s %s", quote_identifier((const char *) lfirst(lc2)), type));
    }
    foreach (lc, n->measures) {
        Measure *m = (Measure *) lfirst(lc);
        want = lappend(want, psprintf("%s %s", quote_identifier(m->alias), format_type_with_typemod(m->type, m->typmod)));
    }
    List *have = NIL;
    Relation rel = table_open(table, AccessShareLock);
    TupleDesc desc = RelationGetDescr(rel);
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (att->attisdropped) continue;
        have = lappend(have, psprintf("%s %s", quote_identifier(NameStr(att->attname)),
                                      format_type_with_typemod(att->atttypid, att->atttypmod)));
    }
    table_close(rel, AccessShareLock);
    bool same = list_length(want) == list_length(have);
    forboth (lc, want, lc2, have) same = same && strcmp((const char *) lfirst(lc), (const char *) lfirst(lc2)) == 0;
    return same;
}

// shard_target: the existing shard a rollup of a source shard writes (the
// rollup table's co-located shard, made by Citus from the table
// create_rollup made in TableOnly mode): the caller's, with exactly the
// columns this rollup's table would have.
static Oid shard_target(const NewRollup *n) {
    Oid target = get_relname_relid(n->target_rv->relname, n->target_nsp);
    if (!OidIsValid(target) || get_rel_relkind(target) != RELKIND_RELATION || !pg_class_ownercheck(target, GetUserId()))
        arg_error(ERRCODE_WRONG_OBJECT_TYPE, psprintf("target %s is not a table of yours", n->target_sql),
                  "A shard's rollup writes the rollup table's co-located shard.");
    if (!has_rollup_columns(n, target))
        arg_error(ERRCODE_DATATYPE_MISMATCH, psprintf("target %s does not have this rollup's columns", n->target_sql),
                  "A shard's rollup writes a shard of the rollup table made for it.");
    record_dependency(RelationRelationId, target, RelationRelationId, n->r.source, DEPENDENCY_NORMAL);
    return target;
}

static AttrNumber *attnum_array(List *l, int *n) {
    *n = list_length(l);
    AttrNumber *a = (AttrNumber *) palloc((*n + 1) * sizeof(AttrNumber));
    for (int i = 0; i < *n; i++) a[i] = (AttrNumber) list_nth_int(l, i);
    return a;
}

// recorded_settings: the caller's search_path (it resolves the expressions,
// now and at every refresh: this function has no SET clause for it), and the
// other settings that decide what the expressions' text means.
static void recorded_settings(Rollup *r) {
    r->search_path = pstrdup(GetConfigOption("search_path", false, false));
    r->nsettings = NUM_PARSE_SETTINGS;
    r->settings = (char **) palloc(NUM_PARSE_SETTINGS * sizeof(char *));
    for (int k = 0; k < NUM_PARSE_SETTINGS; k++)
        r->settings[k] = psprintf("%s=%s", parse_setting_name(k), GetConfigOption(parse_setting_name(k), false, false));
}

}  // namespace memoria

using namespace memoria;

// create: create_rollup's work, in one of the modes.
static Datum create(FunctionCallInfo fcinfo, CreateMode mode) {
    // 1. Validate every argument; create nothing yet.
    NewRollup n;
    memset(&n, 0, sizeof n);
    n.mode = mode;
    recorded_settings(&n.r);
    n.r.owner = GetUserId();
    check_name_and_source(fcinfo, &n);
    check_time_column(fcinfo, &n);
    check_dimensions_and_scope(fcinfo, &n);
    check_measures(fcinfo, &n);
    check_bucket_and_filter(fcinfo, &n);
    check_invalidation(fcinfo, &n);
    if (mode != CreateMode::Validate && rollup_name_taken(n.r.name))
        arg_error(ERRCODE_DUPLICATE_OBJECT, psprintf("rollup \"%s\" already exists", n.r.name),
                  "Drop it first with memoria.drop_rollup(), or choose another name.");
    if (mode != CreateMode::Validate) resolve_target(fcinfo, &n);
    check_plans(&n);
    if (mode == CreateMode::Validate) {
        // (A rollup of a Citus table: its table must still fit, e.g. after a
        // column's type changed.)
        if (!PG_ARGISNULL(12)) {
            char *t = text_to_cstring(PG_GETARG_TEXT_PP(12));
            Oid table = RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(t)), NoLock, false);
            if (!has_rollup_columns(&n, table))
                arg_error(ERRCODE_DATATYPE_MISMATCH, psprintf("the rollup table %s no longer has the rollup's columns", t),
                          "Its columns' types follow the source's and the measures'.");
        }
        PG_RETURN_NULL();
    }
    n.r.dim_attnums = attnum_array(n.dims, &n.r.ndims);
    ListCell *lc;
    int k = 0;
    foreach (lc, n.dim_exprs) {
        if (lfirst(lc) == NULL) {
            k++;
            continue;
        }
        if (n.r.dim_exprs == NULL) n.r.dim_exprs = (char **) palloc0((n.r.ndims + 1) * sizeof(char *));
        n.r.dim_exprs[k++] = ((Dimension *) lfirst(lc))->expr;
    }
    n.r.scope_attnums = attnum_array(n.scope, &n.r.nscope);
    char *problem;
    attach_view_join(&n.r, &problem);
    MEMORIA_ASSERT(problem == NULL);

    // 2. Create.  From here on only memoria's own SQL runs: pin the
    // search_path, so that no object of the caller's can stand in for a
    // built-in one.  (Validation used the caller's, recorded above.)
    int guc_nest = NewGUCNestLevel();
    (void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true,
                             0, false);
    n.r.id = next_rollup_id();
    n.r.target = create_rollup_table(&n);
    int ncols = 1 + n.r.ndims + n.r.nmeasures;
    n.r.target_attnums = (AttrNumber *) palloc(ncols * sizeof(AttrNumber));
    for (int k = 0; k < ncols; k++) n.r.target_attnums[k] = (AttrNumber) (k + 1);
    if (mode == CreateMode::TableOnly) {
        // DROP FUNCTION of a measure's function would otherwise cascade to
        // the shards of the table on the workers.
        record_function_dependencies(&n.r);
        citus_distribute_rollup_table(fcinfo, n.r.source, n.r.target, n.default_target, n.r.search_path);
        AtEOXact_GUC(true, guc_nest);
        PG_RETURN_OID(n.r.target);
    }
    n.r.dirty_log = create_dirty_log(n.r.id, n.r.source, n.r.time_type, n.scope, n.r.owner, n.r.target, false);
    if (n.join != NULL && n.join->ntables > 0)
        n.r.link_log = create_link_log(n.r.id, n.join->max_keys, n.r.owner, n.r.target);
    insert_rollup(&n.r);
    CommandCounterIncrement();
    settle_delta_log(&n.r, false);
    reconcile_triggers(&n.r, true);
    ensure_guard_trigger(&n.r);
    record_function_dependencies(&n.r);
    // (A shard's has none: Citus refuses views on workers, and pg_dump, which
    // does not see shards, could not restore one.)
    if (mode == CreateMode::Whole && !citus_shard(n.r.source)) create_live_view(&n.r);
    if (n.r.updated_at_attnum != 0) {
        // Rows stamped up to the horizon are the backfill's; later ones are
        // found by refresh.  The capture trigger created above holds off
        // writers of the source, so no prepared transaction has rows.
        TimestampTz horizon;
        if (!updated_at_horizon(&n.r, true, &horizon)) TIMESTAMP_NOBEGIN(horizon);
        set_scanned_through(&n.r, horizon);
    }
    AtEOXact_GUC(true, guc_nest);
    wake_worker_pool_at_commit();  // its first refresh is due
    PG_RETURN_OID(n.r.target);
}

MEMORIA_FUNCTION(memoria_create_rollup) {
    // A distributed source: the co-located mode (citus.hpp).
    if (!PG_ARGISNULL(1) && citus_table(PG_GETARG_OID(1))) return citus_forward(fcinfo, "citus_create_rollup");
    return create(fcinfo, CreateMode::Whole);
}

// memoria_internal.create_rollup_part(create_rollup's arguments, mode) for
// rollups of Citus tables (citus.hpp): 'table' makes the rollup table,
// distributes it and records the rollup; 'shard' makes a rollup of a source
// shard into its existing target shard; 'validate' checks the arguments.
MEMORIA_FUNCTION(memoria_create_rollup_part) {
    const char *mode = PG_ARGISNULL(13) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(13));
    if (strcmp(mode, "table") == 0) return create(fcinfo, CreateMode::TableOnly);
    if (strcmp(mode, "validate") == 0) return create(fcinfo, CreateMode::Validate);
    if (strcmp(mode, "shard") == 0) {
        if (PG_ARGISNULL(12)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "target must not be NULL", NULL);
        return create(fcinfo, CreateMode::IntoShard);
    }
    arg_error(ERRCODE_INVALID_PARAMETER_VALUE, psprintf("mode \"%s\" is not 'table', 'shard' or 'validate'", mode), NULL);
    pg_unreachable();
}

// drop_one: drop rollup r (see memoria_drop_rollup); the rollups of its
// table first, with cascade, else an error if it has any.
static void drop_one(Rollup *r, bool drop_table, bool cascade) {
    List *dependents = dependent_rollups(r);
    if (dependents != NIL && !cascade) {
        const Rollup *d = (const Rollup *) linitial(dependents);
        ereport(ERROR, (errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
                        errmsg("cannot drop rollup \"%s\": rollup \"%s\" is a rollup of its table", r->name, d->name),
                        errhint("memoria.drop_rollup('%s', cascade => true) drops the rollups of its table too.",
                                r->name)));
    }
    ListCell *lc;
    foreach (lc, dependents) {
        Rollup *d = (Rollup *) lfirst(lc);
        check_can_manage(d);
        drop_one(d, drop_table, true);
    }
    lock_rollup(r->id);  // let a running refresh finish first
    follow_source_owner(r);
    // The catalog row first: the sql_drop hook refuses to let a trigger of a
    // rollup that still exists be dropped.
    delete_rollup(r->id);
    CommandCounterIncrement();
    drop_live_view(r);  // (it reads the log's row type)
    // Then the capture triggers: dropping them waits for in-flight writers,
    // whose keys are then already in the log we drop next.
    drop_triggers(r);
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    spi_exec(psprintf("DROP TABLE IF EXISTS %s", qualified_relation_name(r->dirty_log)), 0, NULL, NULL, NULL, false);
    for (Oid log : {r->link_log, r->delta_log})
        if (OidIsValid(log) && get_rel_name(log) != NULL)
            spi_exec(psprintf("DROP TABLE %s", qualified_relation_name(log)), 0, NULL, NULL, NULL, false);
    if (drop_table)
        spi_exec(psprintf("DROP TABLE %s", qualified_relation_name(r->target)), 0, NULL, NULL, NULL, false);
    leave_catalog_session(cs);
    SPI_finish();
    CommandCounterIncrement();
    settle_schema_grant(r->owner);
    if (!drop_table) {
        // The table stays as a plain table: forget memoria's dependencies.
        deleteDependencyRecordsForSpecific(RelationRelationId, r->target, DEPENDENCY_NORMAL, RelationRelationId,
                                           r->source);
        deleteDependencyRecordsForClass(RelationRelationId, r->target, ProcedureRelationId, DEPENDENCY_NORMAL);
        deleteDependencyRecordsForClass(RelationRelationId, r->target, ExtensionRelationId, DEPENDENCY_NORMAL);
        deleteDependencyRecordsForClass(RelationRelationId, r->target, ExtensionRelationId, DEPENDENCY_AUTO);
    }
}

MEMORIA_FUNCTION(memoria_drop_rollup) {
    if (PG_ARGISNULL(0)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "name must not be NULL", NULL);
    bool drop_table = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
    bool cascade = PG_NARGS() > 2 && !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);  // (no cascade before 0.5.0)
    if (citus_rollup_exists(text_to_cstring(PG_GETARG_TEXT_PP(0)))) return citus_forward(fcinfo, "citus_drop_rollup");
    Rollup *r = load_rollup(text_to_cstring(PG_GETARG_TEXT_PP(0)));
    drop_one(r, drop_table, cascade);
    PG_RETURN_VOID();
}

// statements.cpp: the SQL memoria runs on a rollup's tables (statements.hpp).
//
// Keys are matched column by column when the scope has no NULLs (the fastest
// hash join), and otherwise as values of the dirty log's row type: a named
// composite, whose equality treats NULLs as equal and which, unlike an
// anonymous record, the planner knows it can hash (no sort of the source or
// the rollup).  Vanished groups are found the same way (an anonymous record
// only where a dimension may be NULL).
//
// Aliases memoria adds start with a prefix chosen so that no source column
// (nor the source table's name) starts with it; user expressions can then use
// the source's column names unqualified without ambiguity.
#include "statements.hpp"

namespace memoria {

// Names used while building one statement.
struct Names {
    const char *p;        // alias prefix, e.g. "memoria_"
    char *src;            // qualified source
    char *tgt;            // qualified rollup table
    char *log;            // qualified dirty log
    char *time;           // source time column, qualified by the source
    List *dims;           // source dimension columns, qualified
    List *scope;          // source scope columns, qualified
    List *tgt_dims;       // rollup table: bucket + dimension columns
    List *tgt_scope;      // rollup table: bucket + scope columns
    List *tgt_measures;   // rollup table: measure columns
    List *log_cols;       // dirty log: bucket + scope columns
    char *delta;          // qualified delta log (additive.hpp), or NULL
    List *delta_key_cols; // its bucket + scope columns (like log_cols)
    bool measures_comparable;  // every measure type has an equality operator
    bool scope_not_null;       // every scope column is NOT NULL in the source
    bool dims_not_null;        // every dimension column is NOT NULL in the source
    const char *bucket_args;   // memoria.bucket()'s width and zone: "$1, $2", or literals in a view
};

static bool prefix_is_free(const Rollup *r, const char *p) {
    size_t n = strlen(p);
    if (strncmp(get_rel_name(r->source), p, n) == 0) return false;
    Relation rel = table_open(r->source, AccessShareLock);
    TupleDesc desc = RelationGetDescr(rel);
    bool free = true;
    for (int i = 0; i < desc->natts && free; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (!att->attisdropped && strncmp(NameStr(att->attname), p, n) == 0) free = false;
    }
    table_close(rel, AccessShareLock);
    return free;
}


static char *qualify(const char *rel, const char *col) { return psprintf("%s.%s", rel, col); }

static Names names_for(const Rollup *r) {
    Names n;
    memset(&n, 0, sizeof n);
    char *p = pstrdup("memoria_");
    while (!prefix_is_free(r, p)) p = psprintf("_%s", p);
    n.p = p;
    n.bucket_args = "$1, $2";
    n.src = qualified_relation_name(r->source);
    n.tgt = qualified_relation_name(r->target);
    n.log = qualified_relation_name(r->dirty_log);
    n.time = qualify(n.src, column_name(r->source, r->time_attnum));
    n.tgt_dims = lappend(NIL, column_name(r->target, r->target_attnums[0]));
    n.tgt_scope = lappend(NIL, column_name(r->target, r->target_attnums[0]));
    n.log_cols = lappend(NIL, column_name(r->dirty_log, 1));
    for (int i = 0; i < r->ndims; i++) {
        // (An expression goes on lines of its own, in parentheses, like a measure.)
        n.dims = lappend(n.dims, r->dim_exprs && r->dim_exprs[i] ? psprintf("(\n%s\n)", r->dim_exprs[i])
                                                                 : qualify(n.src, column_name(r->source, r->dim_attnums[i])));
        n.tgt_dims = lappend(n.tgt_dims, column_name(r->target, r->target_attnums[1 + i]));
    }
    if (OidIsValid(r->delta_log) && get_rel_name(r->delta_log) != NULL) {
        n.delta = qualified_relation_name(r->delta_log);
        n.delta_key_cols = list_make1(pstrdup("bucket"));
        for (int i = 0; i < r->nscope; i++)
            for (int j = 0; j < r->ndims; j++)
                if (r->dim_attnums[j] == r->scope_attnums[i])
                    n.delta_key_cols = lappend(n.delta_key_cols, psprintf("g%d", j + 1));
    }
    for (int i = 0; i < r->nscope; i++) {
        n.scope = lappend(n.scope, qualify(n.src, column_name(r->source, r->scope_attnums[i])));
        // The scope column's position among the dimensions gives its rollup column.
        for (int j = 0; j < r->ndims; j++)
            if (r->dim_attnums[j] == r->scope_attnums[i])
                n.tgt_scope = lappend(n.tgt_scope, column_name(r->target, r->target_attnums[1 + j]));
        n.log_cols = lappend(n.log_cols, column_name(r->dirty_log, (AttrNumber) (2 + i)));
    }
    // NULLs: as the rollup table's columns say (NOT NULL only where the
    // source's column was when the rollup was made, and has stayed: a column
    // made NOT NULL since may still have NULLs in the logs and the rollup).
    n.scope_not_null = true;
    n.dims_not_null = true;
    for (int i = 0; i < r->ndims; i++) {
        bool not_null = column_not_null(r->target, r->target_attnums[1 + i]);
        if (!not_null) n.dims_not_null = false;
        for (int j = 0; j < r->nscope; j++)
            if (r->scope_attnums[j] == r->dim_attnums[i] && r->dim_attnums[i] != 0 && !not_null) n.scope_not_null = false;
    }
    n.measures_comparable = true;
    for (int i = 0; i < r->nmeasures; i++) {
        AttrNumber a = r->target_attnums[1 + r->ndims + i];
        n.tgt_measures = lappend(n.tgt_measures, column_name(r->target, a));
        TypeCacheEntry *tc = lookup_type_cache(get_atttype(r->target, a), TYPECACHE_EQ_OPR);
        if (!OidIsValid(tc->eq_opr)) n.measures_comparable = false;
    }
    return n;
}

// append_list: items of l, each prefixed by `qual.` when qual is given.
static void append_list(StringInfo s, List *l, const char *qual, const char *sep = ", ") {
    ListCell *lc;
    bool first = true;
    foreach (lc, l) {
        appendStringInfo(s, "%s%s%s%s", first ? "" : sep, qual ? qual : "", qual ? "." : "",
                         (const char *) lfirst(lc));
        first = false;
    }
}

static void append_bucket_call(StringInfo s, const Names &n, const char *value) {
    appendStringInfo(s, "memoria.bucket(%s, %s)", value, n.bucket_args);
}

// append_key_exprs: a source row's key, "memoria.bucket(time, $1, $2), scope..."
// (the dirty log's columns, in order).
static void append_key_exprs(StringInfo s, const Names &n) {
    append_bucket_call(s, n, n.time);
    ListCell *lc;
    foreach (lc, n.scope) appendStringInfo(s, ", %s", (const char *) lfirst(lc));
}

// append_fresh_cte: "<p>fresh (g0.., v0..) AS (SELECT bucket, dims, measures ...)".
// `from_and_where` supplies the FROM/WHERE part; `bucket_expr` the bucket column.
static void append_fresh_cte(StringInfo s, const Rollup *r, const Names &n, const char *bucket_expr,
                             const char *from_and_where) {
    const char *p = n.p;
    appendStringInfo(s, "%sfresh (%sg0", p, p);
    for (int i = 0; i < r->ndims; i++) appendStringInfo(s, ", %sg%d", p, i + 1);
    for (int i = 0; i < r->nmeasures; i++) appendStringInfo(s, ", %sv%d", p, i);
    appendStringInfo(s, ") AS (\n  SELECT %s", bucket_expr);
    if (r->ndims > 0) {
        appendStringInfoString(s, ", ");
        append_list(s, n.dims, NULL);
    }
    for (int i = 0; i < r->nmeasures; i++) appendStringInfo(s, ",\n%s\n", r->measures[i]);
    appendStringInfo(s, "  %s", from_and_where);
    if (r->filter != NULL) appendStringInfo(s, "\n  AND (\n%s\n)", r->filter);
    appendStringInfoString(s, "\n  GROUP BY 1");
    for (int i = 0; i < r->ndims; i++) appendStringInfo(s, ", %d", i + 2);
    appendStringInfoString(s, "\n)");
}

// append_fresh_group_row: ROW(g0, g1, ...) of a fresh row aliased `alias`.
static void append_fresh_group_row(StringInfo s, const Rollup *r, const char *p, const char *alias) {
    appendStringInfo(s, "ROW(%s.%sg0", alias, p);
    for (int i = 0; i < r->ndims; i++) appendStringInfo(s, ", %s.%sg%d", alias, p, i + 1);
    appendStringInfoChar(s, ')');
}

static void append_key_row(StringInfo s, List *cols, const char *qual) {
    appendStringInfoString(s, "ROW(");
    append_list(s, cols, qual);
    appendStringInfoChar(s, ')');
}

// append_gone_and_put: delete rollup rows (selected by `target_where`, over
// alias <p>t2, and with typed_key over <p>tk.key, the row's key as a value of
// the log's row type) whose group is not in fresh, and upsert fresh.
static void append_gone_and_put(StringInfo s, const Rollup *r, const Names &n, const char *target_where,
                                bool typed_key) {
    const char *p = n.p;
    // Delete by ctid = ANY(ARRAY(...)): a TID scan, no self-join.
    appendStringInfo(s, ",\n%sgone AS (\n  DELETE FROM %s AS %st WHERE %st.ctid = ANY (ARRAY(\n    SELECT %st2.ctid FROM %s AS %st2\n",
                     p, n.tgt, p, p, p, n.tgt, p);
    if (typed_key) {
        appendStringInfo(s, "    CROSS JOIN LATERAL (SELECT ");
        append_key_row(s, n.tgt_scope, psprintf("%st2", p));
        appendStringInfo(s, "::%s AS %skey) AS %stk\n", n.log, p, p);
    }
    if (n.dims_not_null) {
        // Column by column: a hashed anti-join (records would be sorted).
        appendStringInfo(s, "    WHERE %s\n      AND NOT EXISTS (SELECT 1 FROM %sfresh %sf WHERE ", target_where, p, p);
        int i = 0;
        ListCell *lc;
        foreach (lc, n.tgt_dims) {
            appendStringInfo(s, "%s%sf.%sg%d = %st2.%s", i ? " AND " : "", p, p, i, p, (const char *) lfirst(lc));
            i++;
        }
        appendStringInfoString(s, ")\n  ))\n  RETURNING 1\n)");
    } else {
        // As records, whose equality treats NULLs as equal.
        appendStringInfoString(s, "    CROSS JOIN LATERAL (SELECT ");
        append_list(s, n.tgt_dims, psprintf("%st2", p));
        appendStringInfo(s, ") AS %stg\n    WHERE %s\n      AND NOT EXISTS (SELECT 1 FROM %sfresh %sf WHERE ", p,
                         target_where, p, p);
        append_fresh_group_row(s, r, p, psprintf("%sf", p));
        appendStringInfo(s, " = %stg)\n  ))\n  RETURNING 1\n)", p);
    }

    appendStringInfo(s, ",\n%sput AS (\n  INSERT INTO %s AS %st (", p, n.tgt, p);
    append_list(s, n.tgt_dims, NULL);
    appendStringInfoString(s, ", ");
    append_list(s, n.tgt_measures, NULL);
    appendStringInfo(s, ")\n  SELECT * FROM %sfresh\n  ON CONFLICT (", p);
    append_list(s, n.tgt_dims, NULL);
    appendStringInfoString(s, ") DO UPDATE SET ");
    ListCell *lc;
    bool first = true;
    foreach (lc, n.tgt_measures) {
        const char *m = (const char *) lfirst(lc);
        appendStringInfo(s, "%s%s = EXCLUDED.%s", first ? "" : ", ", m, m);
        first = false;
    }
    if (n.measures_comparable) {
        // Leave unchanged rows alone: no dead tuple, no WAL.
        appendStringInfoString(s, "\n  WHERE (");
        append_list(s, n.tgt_measures, psprintf("%st", p));
        appendStringInfoString(s, ") IS DISTINCT FROM (");
        append_list(s, n.tgt_measures, "EXCLUDED");
        appendStringInfoChar(s, ')');
    }
    appendStringInfoString(s, "\n  RETURNING 1\n)");
}

char *claim_keys_sql(const Rollup *r, bool limited, bool frozen) {
    Names n = names_for(r);
    const char *p = n.p;
    const char *b = (const char *) linitial(n.log_cols);
    // Which rows the limit picks keys among: live buckets only when some are
    // frozen (frozen rows all go along, below).
    char *pickable = frozen ? psprintf("%s >= $2", b) : psprintf("%s IS NOT NULL", b);
    StringInfoData s;
    initStringInfo(&s);
    // Delete exactly the log rows this statement's snapshot sees (all, or
    // those of the first $1 keys by bucket).  Rows committed later stay for
    // the next refresh.  TRUNCATE markers (NULL bucket) are left to the full
    // rebuild.
    appendStringInfo(&s, "DELETE FROM %s AS %sl\n", n.log, p);
    if (limited) {
        appendStringInfo(&s, "WHERE %sl.ctid = ANY (ARRAY(\n  SELECT %sx.%stid FROM (SELECT ctid AS %stid, ", p, p, p, p);
        append_key_row(&s, n.log_cols, NULL);
        appendStringInfo(&s, " AS %skey FROM %s WHERE %s) %sx\n", p, n.log, pickable, p);
        appendStringInfo(&s, "  JOIN (SELECT %sy.%skey FROM (SELECT ", p, p);
        append_key_row(&s, n.log_cols, NULL);
        appendStringInfo(&s, " AS %skey, %s AS %sb FROM %s WHERE %s) %sy\n", p, b, p, n.log, pickable, p);
        appendStringInfo(&s, "        GROUP BY %sy.%skey ORDER BY min(%sy.%sb) LIMIT $1) %spick\n", p, p, p, p, p);
        appendStringInfo(&s, "    ON %sx.%skey = %spick.%skey))\n", p, p, p, p);
        if (frozen) appendStringInfo(&s, "  OR %sl.%s < $2\n", p, b);
    } else {
        appendStringInfo(&s, "WHERE %sl.%s IS NOT NULL\n", p, b);
    }
    appendStringInfo(&s, "RETURNING %sl, %sl.%s", p, p, b);
    return s.data;
}

char *recompute_keys_sql(const Rollup *r, int nranges, bool null_keys) {
    Names n = names_for(r);
    // Column by column unless a key has a NULL (a source or rollup row with a
    // NULL in its scope then matches no key, rightly).
    bool by_column = n.scope_not_null || !null_keys;
    const char *p = n.p;
    StringInfoData s;
    initStringInfo(&s);
    // 1. The claimed log rows ($3, an array of the log's row type), their
    //    distinct keys and buckets.
    appendStringInfo(&s, "WITH %sclaimed AS (SELECT * FROM unnest($3::%s[]))", p, n.log);
    // Keys are values of the log's row type: a named composite type, whose
    // equality treats NULLs as equal and which, unlike an anonymous record,
    // the planner knows it can hash (no sort of the source or rollup).
    // Without NULLs in the keys, they are plain columns, matched column by
    // column (the fastest hash join).
    appendStringInfo(&s, ",\n%skeys AS (SELECT DISTINCT ", p);
    if (by_column) {
        append_list(&s, n.log_cols, NULL);
        appendStringInfo(&s, " FROM %sclaimed)", p);
    } else {
        append_key_row(&s, n.log_cols, NULL);
        appendStringInfo(&s, "::%s AS %skey FROM %sclaimed)", n.log, p, p);
    }
    // 2. Ground truth for those keys: the source rows in the claimed ranges
    //    (constants the planner estimates, so it picks index or sequential
    //    scans well) whose key is one of them (a hashed semi-join; the key is
    //    built from source columns only).
    StringInfoData from;
    initStringInfo(&from);
    appendStringInfo(&from, "FROM %s\n  CROSS JOIN LATERAL (SELECT ", n.src);
    append_key_exprs(&from, n);
    appendStringInfo(&from, ") AS %sk (%sk0", p, p);
    for (int i = 0; i < r->nscope; i++) appendStringInfo(&from, ", %sk%d", p, i + 1);
    appendStringInfoChar(&from, ')');
    if (!by_column) {
        // The key as one column (a row constructor left of IN would compare
        // column by column, with NULLs unequal).
        appendStringInfo(&from, "\n  CROSS JOIN LATERAL (SELECT ROW(%sk.%sk0", p, p);
        for (int i = 0; i < r->nscope; i++) appendStringInfo(&from, ", %sk.%sk%d", p, p, i + 1);
        appendStringInfo(&from, ")::%s AS %skey) AS %skk", n.log, p, p);
    }
    appendStringInfoString(&from, "\n  WHERE (");
    for (int i = 0; i < nranges; i++)
        appendStringInfo(&from, "%s%s BETWEEN $%d AND $%d", i ? " OR " : "", n.time, 4 + 2 * i, 5 + 2 * i);
    if (nranges == 0) appendStringInfoString(&from, "false");
    if (by_column) {
        appendStringInfo(&from, ")\n  AND (%sk.%sk0", p, p);
        for (int i = 0; i < r->nscope; i++) appendStringInfo(&from, ", %sk.%sk%d", p, p, i + 1);
        appendStringInfo(&from, ") IN (SELECT * FROM %skeys)", p);
    } else {
        appendStringInfo(&from, ")\n  AND %skk.%skey IN (SELECT %skey FROM %skeys)", p, p, p, p);
    }
    appendStringInfoString(&s, ",\n");
    append_fresh_cte(&s, r, n, psprintf("%sk.%sk0", p, p), from.data);
    // The additive path's partials of those keys: this statement's snapshot
    // sees their rows, so its result holds them (additive.hpp).
    if (n.delta != NULL) {
        appendStringInfo(&s, ",\n%sdeltas_gone AS (DELETE FROM %s AS %sd WHERE %sd.bucket = ANY ($%d) AND ", p, n.delta,
                         p, p, 4 + 2 * nranges);
        if (by_column) {
            appendStringInfoChar(&s, '(');
            append_list(&s, n.delta_key_cols, psprintf("%sd", p));
            appendStringInfo(&s, ") IN (SELECT * FROM %skeys))", p);
        } else {
            // (As one value of the log's type, like the rollup's rows below.)
            appendStringInfo(&s, "%sd.ctid = ANY (ARRAY(\n    SELECT %sd2.ctid FROM %s AS %sd2 CROSS JOIN LATERAL (SELECT ",
                             p, p, n.delta, p);
            append_key_row(&s, n.delta_key_cols, psprintf("%sd2", p));
            appendStringInfo(&s, "::%s AS %skey) AS %sdk\n    WHERE %sdk.%skey IN (SELECT %skey FROM %skeys))))", n.log, p,
                             p, p, p, p, p);
        }
    }
    // 3. Replace the rollup rows of those keys.
    StringInfoData where;
    initStringInfo(&where);
    // The claimed buckets as a constant array: an index scan of the rollup's key.
    appendStringInfo(&where, "%st2.%s = ANY ($%d)\n      AND ", p, (const char *) linitial(n.tgt_dims),
                     4 + 2 * nranges);
    if (by_column) {
        appendStringInfoChar(&where, '(');
        append_list(&where, n.tgt_scope, psprintf("%st2", p));
        appendStringInfo(&where, ") IN (SELECT * FROM %skeys)", p);
    } else {
        appendStringInfo(&where, "%stk.%skey IN (SELECT %skey FROM %skeys)", p, p, p, p);
    }
    append_gone_and_put(&s, r, n, where.data, !by_column);
    appendStringInfo(&s,
                     "\nSELECT (SELECT count(*) FROM %skeys), (SELECT count(*) FROM %sput), "
                     "(SELECT count(*) FROM %sgone)",
                     p, p, p);
    return s.data;
}

// append_window_fresh_cte: the fresh CTE over every source row whose bucket
// is in [$3, $4] (the time range first, so an index on it can serve).  With
// exact_bounds the range holds exactly those rows: no per-row bucket check,
// which the planner would also estimate at a fraction of a percent of the
// rows (and then sort them all to group, rather than hash).
static void append_window_fresh_cte(StringInfo s, const Rollup *r, const Names &n, bool exact_bounds) {
    const char *tname = format_type_be(r->time_type);
    StringInfoData from;
    initStringInfo(&from);
    appendStringInfo(&from, "FROM %s\n  WHERE %s BETWEEN %s($3::%s, $1, $2) AND %s($4::%s, $1, $2)", n.src, n.time,
                     internal_function("bucket_lo"), tname, internal_function("bucket_hi"), tname);
    if (!exact_bounds) {
        appendStringInfoString(&from, "\n  AND ");
        append_bucket_call(&from, n, n.time);
        appendStringInfoString(&from, " BETWEEN $3 AND $4");
    }
    StringInfoData bucket;
    initStringInfo(&bucket);
    append_bucket_call(&bucket, n, n.time);
    append_fresh_cte(s, r, n, bucket.data, from.data);
}

char *recompute_window_sql(const Rollup *r, int flags) {
    bool claim_log = flags & WINDOW_CLAIM_LOG, target_empty = flags & WINDOW_TARGET_EMPTY;
    bool exact_bounds = flags & WINDOW_EXACT_BOUNDS;
    Names n = names_for(r);
    const char *p = n.p;
    StringInfoData s;
    initStringInfo(&s);
    appendStringInfoString(&s, "WITH ");
    if (claim_log) appendStringInfo(&s, "%sclaimed AS (DELETE FROM %s RETURNING 1),\n", p, n.log);
    // The additive path's partials of the window (all of them with the
    // log): its rows are in this statement's result (additive.hpp).
    if (n.delta != NULL)
        appendStringInfo(&s, "%sdeltas_gone AS (DELETE FROM %s%s),\n", p, n.delta,
                         claim_log ? "" : " WHERE bucket BETWEEN $3 AND $4");
    append_window_fresh_cte(&s, r, n, exact_bounds);
    if (target_empty) {
        // Nothing to compare with or delete (a backfill's first pass): a plain insert.
        appendStringInfo(&s, ",\n%sput AS (\n  INSERT INTO %s (", p, n.tgt);
        append_list(&s, n.tgt_dims, NULL);
        appendStringInfoString(&s, ", ");
        append_list(&s, n.tgt_measures, NULL);
        appendStringInfo(&s, ")\n  SELECT * FROM %sfresh\n  RETURNING 1\n)", p);
        appendStringInfo(&s, "\nSELECT (SELECT count(DISTINCT %sg0) FROM %sfresh), (SELECT count(*) FROM %sput), 0::bigint",
                         p, p, p);
        return s.data;
    }
    append_gone_and_put(&s, r, n, psprintf("%st2.%s BETWEEN $3 AND $4", p, (const char *) linitial(n.tgt_dims)),
                        false);
    appendStringInfo(&s,
                     "\nSELECT (SELECT count(DISTINCT %sg0) FROM %sfresh), (SELECT count(*) FROM %sput), "
                     "(SELECT count(*) FROM %sgone)",
                     p, p, p, p);
    return s.data;
}

char *window_is_empty_sql(const Rollup *r) {
    return psprintf("SELECT NOT EXISTS (SELECT 1 FROM %s WHERE %s BETWEEN $3 AND $4)",
                    qualified_relation_name(r->target), column_name(r->target, r->target_attnums[0]));
}

char *window_covers_source_sql(const Rollup *r) {
    const char *tname = format_type_be(r->time_type);
    char *t = column_name(r->source, r->time_attnum);
    return psprintf("SELECT NOT EXISTS (SELECT 1 FROM %s WHERE %s < %s($3::%s, $1, $2) OR %s > %s($4::%s, $1, $2))",
                    qualified_relation_name(r->source), t, internal_function("bucket_lo"), tname, t,
                    internal_function("bucket_hi"), tname);
}

Params bucket_params(const Rollup *r) {
    Params p;
    p.n = 2;
    p.types[0] = INTERVALOID;
    p.values[0] = IntervalPGetDatum(&r->bucket);
    p.types[1] = TEXTOID;
    p.values[1] = CStringGetTextDatum(r->time_zone);
    return p;
}

Params window_params(const Rollup *r, Datum first, Datum last) {
    Params p = bucket_params(r);
    p.types[2] = p.types[3] = r->time_type;
    p.values[2] = first;
    p.values[3] = last;
    p.n = 4;
    return p;
}

Params recompute_keys_params(const Rollup *r, Datum claimed, int nranges, const Datum *lo, const Datum *hi,
                             Datum buckets) {
    Params p = bucket_params(r);
    p.types[2] = get_array_type(get_rel_type_id(r->dirty_log));
    p.values[2] = claimed;
    for (int i = 0; i < nranges; i++) {
        p.types[3 + 2 * i] = p.types[4 + 2 * i] = r->time_type;
        p.values[3 + 2 * i] = lo[i];
        p.values[4 + 2 * i] = hi[i];
    }
    p.types[3 + 2 * nranges] = get_array_type(r->time_type);
    p.values[3 + 2 * nranges] = buckets;
    p.n = 4 + 2 * nranges;
    return p;
}

// deltas_exist: " OR EXISTS (SELECT 1 FROM <delta log>)", or "".
static char *deltas_exist(const Rollup *r) {
    Names n = names_for(r);
    return n.delta ? psprintf(" OR EXISTS (SELECT 1 FROM %s)", n.delta) : pstrdup("");
}

char *log_state_sql(const Rollup *r) {
    char *log = qualified_relation_name(r->dirty_log);
    char *b = column_name(r->dirty_log, 1);
    return psprintf("SELECT EXISTS (SELECT 1 FROM %s)%s, EXISTS (SELECT 1 FROM %s WHERE %s IS NULL)", log,
                    deltas_exist(r), log, b);
}

char *log_empty_sql(const Rollup *r) {
    return psprintf("SELECT NOT (EXISTS (SELECT 1 FROM %s)%s)", qualified_relation_name(r->dirty_log),
                    deltas_exist(r));
}

char *merge_deltas_sql(const Rollup *r, bool frozen) {
    Names n = names_for(r);
    const char *p = n.p;
    Relation log = table_open(r->delta_log, AccessShareLock);
    TupleDesc desc = CreateTupleDescCopy(RelationGetDescr(log));
    table_close(log, AccessShareLock);
    if (desc->natts != 1 + r->ndims + r->nmeasures)
        elog(ERROR, "memoria delta log of rollup \"%s\" does not have its measures' columns", r->name);
    StringInfoData s;
    initStringInfo(&s);
    // 1. Claim every partial this snapshot sees; add up those of a group.
    appendStringInfo(&s, "WITH %sd AS (DELETE FROM %s RETURNING *),\n%sm AS (SELECT bucket", p, n.delta, p);
    for (int i = 0; i < r->ndims; i++) appendStringInfo(&s, ", g%d", i + 1);
    for (int i = 0; i < r->nmeasures; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, 1 + r->ndims + i);
        const char *col = NameStr(att->attname);
        if (strncmp(col, "sum_", 4) == 0)
            appendStringInfo(&s, ", sum(%s)::%s", col, format_type_be_qualified(att->atttypid));
        else
            appendStringInfo(&s, ", %.3s(%s)", col, col);  // min or max
    }
    appendStringInfo(&s, " FROM %sd%s GROUP BY bucket", p, frozen ? " WHERE bucket >= $1" : "");
    for (int i = 0; i < r->ndims; i++) appendStringInfo(&s, ", g%d", i + 1);
    // 2. Add them to the rollup rows (a new group is a new row).
    appendStringInfo(&s, "),\n%sput AS (\n  INSERT INTO %s AS %st (", p, n.tgt, p);
    append_list(&s, n.tgt_dims, NULL);
    appendStringInfoString(&s, ", ");
    append_list(&s, n.tgt_measures, NULL);
    appendStringInfo(&s, ")\n  SELECT * FROM %sm\n  ON CONFLICT (", p);
    append_list(&s, n.tgt_dims, NULL);
    appendStringInfoString(&s, ") DO UPDATE SET ");
    for (int i = 0; i < r->nmeasures; i++) {
        const char *col = NameStr(TupleDescAttr(desc, 1 + r->ndims + i)->attname);
        const char *m = (const char *) list_nth(n.tgt_measures, i);
        if (i > 0) appendStringInfoString(&s, ", ");
        if (strncmp(col, "sum_", 4) == 0)  // (NULL: no input yet, on either side)
            appendStringInfo(&s, "%s = coalesce(%st.%s + EXCLUDED.%s, %st.%s, EXCLUDED.%s)", m, p, m, m, p, m, m);
        else
            appendStringInfo(&s, "%s = %s(%st.%s, EXCLUDED.%s)", m, strncmp(col, "min_", 4) == 0 ? "least" : "greatest",
                             p, m, m);
    }
    appendStringInfoString(&s, "\n  RETURNING 1\n)");
    appendStringInfo(&s, "\nSELECT (SELECT count(*) FROM %sm), (SELECT count(*) FROM %sput), ", p, p);
    if (frozen)
        appendStringInfo(&s, "(SELECT count(*) FROM %sd WHERE bucket < $1)", p);
    else
        appendStringInfoString(&s, "0::bigint");
    return s.data;
}

char *demote_deltas_sql(const Rollup *r) {
    Names n = names_for(r);
    StringInfoData s;
    initStringInfo(&s);
    appendStringInfo(&s, "WITH %sd AS (DELETE FROM %s RETURNING *)\nINSERT INTO %s SELECT DISTINCT ", n.p, n.delta,
                     n.log);
    append_list(&s, n.delta_key_cols, NULL);
    appendStringInfo(&s, " FROM %sd", n.p);
    return s.data;
}

char *source_range_sql(const Rollup *r) {
    char *t = column_name(r->source, r->time_attnum);
    return psprintf("SELECT min(%s), max(%s) FROM %s", t, t, qualified_relation_name(r->source));
}

char *mark_rebuild_sql(const Rollup *r) {
    return psprintf("INSERT INTO %s (%s) VALUES (NULL)", qualified_relation_name(r->dirty_log),
                    column_name(r->dirty_log, 1));
}

// append_json_object: jsonb_build_object('name', qual.col, ...) over two lists.
static void append_json_object(StringInfo s, List *keys, List *cols, const char *qual) {
    appendStringInfoString(s, "jsonb_build_object(");
    ListCell *k, *c;
    bool first = true;
    forboth (k, keys, c, cols) {
        appendStringInfo(s, "%s%s, %s.%s", first ? "" : ", ", quote_literal_cstr((const char *) lfirst(k)), qual,
                         (const char *) lfirst(c));
        first = false;
    }
    appendStringInfoChar(s, ')');
}

char *verify_sql(const Rollup *r) {
    Names n = names_for(r);
    const char *p = n.p;
    StringInfoData s;
    initStringInfo(&s);
    appendStringInfoString(&s, "WITH ");
    append_window_fresh_cte(&s, r, n, false);  // the check stays the most literal reading
    // Names for the JSON keys: the rollup table's columns, unquoted.
    List *dim_keys = NIL, *dim_cols = NIL, *fresh_dims = NIL, *m_keys = NIL, *fresh_m = NIL;
    for (int i = 0; i < r->ndims; i++) {
        dim_keys = lappend(dim_keys, get_attname(r->target, r->target_attnums[1 + i], false));
        dim_cols = lappend(dim_cols, list_nth(n.tgt_dims, i + 1));
        fresh_dims = lappend(fresh_dims, psprintf("%sg%d", p, i + 1));
    }
    for (int i = 0; i < r->nmeasures; i++) {
        m_keys = lappend(m_keys, get_attname(r->target, r->target_attnums[1 + r->ndims + i], false));
        fresh_m = lappend(fresh_m, psprintf("%sv%d", p, i));
    }
    const char *b = (const char *) linitial(n.tgt_dims);
    appendStringInfo(&s, ",\n%scur AS (SELECT ", p);
    append_key_row(&s, n.tgt_dims, psprintf("%st", p));
    appendStringInfo(&s, " AS %skey, %st.%s::text AS %sbt, ", p, p, b, p);
    append_json_object(&s, dim_keys, dim_cols, psprintf("%st", p));
    appendStringInfo(&s, " AS %sdims, ", p);
    append_json_object(&s, m_keys, n.tgt_measures, psprintf("%st", p));
    appendStringInfo(&s, " AS %svals", p);
    for (int i = 0; i < r->nmeasures; i++)
        appendStringInfo(&s, ", %st.%s AS %sm%d", p, (const char *) list_nth(n.tgt_measures, i), p, i);
    appendStringInfo(&s, " FROM %s AS %st WHERE %st.%s BETWEEN $3 AND $4)", n.tgt, p, p, b);
    appendStringInfo(&s, ",\n%ssrc AS (SELECT ", p);
    append_fresh_group_row(&s, r, p, psprintf("%sf", p));
    appendStringInfo(&s, " AS %skey, %sf.%sg0::text AS %sbt, ", p, p, p, p);
    append_json_object(&s, dim_keys, fresh_dims, psprintf("%sf", p));
    appendStringInfo(&s, " AS %sdims, ", p);
    append_json_object(&s, m_keys, fresh_m, psprintf("%sf", p));
    appendStringInfo(&s, " AS %svals", p);
    for (int i = 0; i < r->nmeasures; i++) appendStringInfo(&s, ", %sf.%sv%d AS %sm%d", p, p, i, p, i);
    appendStringInfo(&s, " FROM %sfresh AS %sf)", p, p);
    appendStringInfo(&s,
                     "\nSELECT coalesce(%sc.%sbt, %ss.%sbt), coalesce(%sc.%sdims, %ss.%sdims), %sc.%svals, %ss.%svals\n"
                     "FROM %scur AS %sc FULL JOIN %ssrc AS %ss ON %sc.%skey = %ss.%skey\n"
                     "WHERE %sc.%sbt IS NULL OR %ss.%sbt IS NULL",
                     p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p);
    // A measure differs when not equal; floating-point sums recomputed in
    // another row order may differ in the last bits, so floats compare with a
    // relative tolerance.  Types without equality compare as text.
    for (int i = 0; i < r->nmeasures; i++) {
        Oid type = get_atttype(r->target, r->target_attnums[1 + r->ndims + i]);
        char *a = psprintf("%sc.%sm%d", p, p, i), *b2 = psprintf("%ss.%sm%d", p, p, i);
        if (type == FLOAT8OID || type == FLOAT4OID)
            appendStringInfo(&s, "\n   OR NOT (%s IS NOT DISTINCT FROM %s OR abs(%s - %s) <= 1e-9 * greatest(abs(%s), abs(%s)))",
                             a, b2, a, b2, a, b2);
        else if (!OidIsValid(lookup_type_cache(type, TYPECACHE_EQ_OPR)->eq_opr))
            appendStringInfo(&s, "\n   OR %s::text IS DISTINCT FROM %s::text", a, b2);
        else
            appendStringInfo(&s, "\n   OR %s IS DISTINCT FROM %s", a, b2);
    }
    appendStringInfoString(&s, "\nORDER BY 1, 2");
    return s.data;
}

char *dirty_all_keys_sql(const Rollup *r, Oid rel) {
    Names n = names_for(r);
    // Read rel under the source's name, so the key expressions name it; a
    // view source's fact table (or one of its partitions) by its own names.
    bool view = rel == r->source;
    Oid cols = view ? r->source : r->fact;
    n.src = qualified_relation_name(rel);
    n.time = qualify(n.src, column_name(cols, view ? r->time_attnum : r->fact_time_attnum));
    n.scope = NIL;
    for (int i = 0; i < r->nscope; i++)
        n.scope = lappend(n.scope, qualify(n.src, column_name(cols, view ? r->scope_attnums[i] : r->fact_scope_attnums[i])));
    StringInfoData s;
    initStringInfo(&s);
    appendStringInfo(&s, "INSERT INTO %s SELECT DISTINCT ", n.log);
    append_key_exprs(&s, n);
    appendStringInfo(&s, " FROM %s WHERE %s IS NOT NULL", n.src, n.time);
    return s.data;
}

char *expand_rebuild_sql(const Rollup *r) {
    Names n = names_for(r);
    StringInfoData s;
    initStringInfo(&s);
    appendStringInfo(&s, "WITH %sgone AS (DELETE FROM %s WHERE %s IS NULL)\nINSERT INTO %s SELECT DISTINCT ", n.p,
                     n.log, (const char *) linitial(n.log_cols), n.log);
    append_list(&s, n.tgt_scope, NULL);
    appendStringInfo(&s, " FROM %s", n.tgt);
    return s.data;
}

char *pending_keys_sql(const Rollup *r) {
    // (A view source's writes to its joined tables count until a refresh
    // turns them into keys; so do the additive path's partials.)
    Names n = names_for(r);
    StringInfoData deltas;
    initStringInfo(&deltas);
    if (n.delta) {
        appendStringInfoString(&deltas, " UNION SELECT ");
        append_list(&deltas, n.delta_key_cols, NULL);
        appendStringInfo(&deltas, " FROM %s", n.delta);
    }
    return psprintf("SELECT (SELECT count(*) FROM (SELECT %s* FROM %s%s) AS memoria_keys)%s%s%s",
                    n.delta ? "" : "DISTINCT ", qualified_relation_name(r->dirty_log), deltas.data, OidIsValid(r->link_log) ? " + (SELECT count(*) FROM (SELECT DISTINCT * FROM " : "",
                    OidIsValid(r->link_log) ? qualified_relation_name(r->link_log) : "",
                    OidIsValid(r->link_log) ? ") AS memoria_links)" : "");
}

// scan_updated_sql: updated_at mode; log the key of every source row whose
// updated_at is in ($3, $4].  No filter: a row the filter now excludes may
// still be counted in its group, which must then be recomputed.
char *scan_updated_sql(const Rollup *r) {
    Names n = names_for(r);
    StringInfoData s;
    initStringInfo(&s);
    appendStringInfo(&s, "INSERT INTO %s SELECT DISTINCT ", n.log);
    append_key_exprs(&s, n);
    char *upd = qualify(n.src, column_name(r->source, r->updated_at_attnum));
    appendStringInfo(&s, " FROM %s WHERE %s > $3 AND %s <= $4 AND %s IS NOT NULL", n.src, upd, upd, n.time);
    return s.data;
}

// keys_updated_since_sql: updated_at mode; the keys of the source rows
// stamped after $3 (what the next scan will log).
char *keys_updated_since_sql(const Rollup *r) {
    Names n = names_for(r);
    StringInfoData s;
    initStringInfo(&s);
    appendStringInfoString(&s, "SELECT DISTINCT ");
    append_key_exprs(&s, n);
    char *upd = qualify(n.src, column_name(r->source, r->updated_at_attnum));
    appendStringInfo(&s, " FROM %s WHERE %s > $3 AND %s IS NOT NULL", n.src, upd, n.time);
    return s.data;
}

char *live_view_sql(const Rollup *r, const char *view) {
    Names n = names_for(r);
    const char *p = n.p;
    const char *T = format_type_be(r->time_type);
    n.bucket_args = psprintf("%s::interval, %s::text",
                             quote_literal_cstr(DatumGetCString(DirectFunctionCall1(interval_out,
                                                                                    IntervalPGetDatum(&r->bucket)))),
                             quote_literal_cstr(r->time_zone ? r->time_zone : "UTC"));
    const char *lo = internal_function("bucket_lo"), *hi = internal_function("bucket_hi");
    StringInfoData s;
    initStringInfo(&s);
    appendStringInfo(&s, "CREATE VIEW %s WITH (security_invoker = true) AS\n", view);
    // The pending keys, once per read, each once (the log and this
    // transaction may both hold one); k.<p>b NULL only in a rebuild row.
    appendStringInfo(&s, "WITH %sk AS MATERIALIZED (\n  SELECT DISTINCT * FROM %s(%d) AS %sk(%srebuild_from %s, %sb %s", p,
                     internal_function("live_keys"), r->id, p, p, T, p, T);
    for (int i = 0; i < r->nscope; i++)
        appendStringInfo(&s, ", %ss%d %s", p, i + 1,
                         format_type_be(getBaseType(get_atttype(r->source, r->scope_attnums[i]))));
    appendStringInfo(&s, ")\n),\n%sr AS MATERIALIZED (SELECT min(%srebuild_from) AS %sfrom FROM %sk),\n", p, p, p, p);
    // Fresh rows of the pending keys: each bucket that has one is read once
    // by its time range, and its rows of pending keys are kept (a hashed
    // semi-join).  The bucket column is the key's, so that a reader's
    // filter on it limits the buckets read.
    StringInfoData from;
    initStringInfo(&from);
    appendStringInfo(&from,
                     "FROM (SELECT DISTINCT %sk.%sb AS %skb FROM %sk WHERE %sk.%sb < coalesce((SELECT %sfrom FROM %sr), "
                     "'infinity'::%s)) AS %skb\n  JOIN %s ON %s BETWEEN %s(%skb.%skb, %s) AND %s(%skb.%skb, %s)\n",
                     p, p, p, p, p, p, p, p, T, p, n.src, n.time, lo, p, p, n.bucket_args, hi, p, p, n.bucket_args);
    // (The row's key as one column: a row constructor left of IN would be
    // compared column by column, NULLs unequal.)
    // Without NULLs in the scope the key's columns are compared one by one
    // (the fastest hash); otherwise as one value of the log's row type.
    ListCell *lc;
    if (!n.scope_not_null) {
        appendStringInfo(&from, "  CROSS JOIN LATERAL (SELECT ROW(%skb.%skb", p, p);
        foreach (lc, n.scope) appendStringInfo(&from, ", %s", (const char *) lfirst(lc));
        appendStringInfo(&from, ")::%s AS %skey) AS %skk\n", n.log, p, p);
    }
    appendStringInfoString(&from, "  WHERE ");
    append_bucket_call(&from, n, n.time);
    // (Inside coalesce: a hashed sub-plan probed by every row read, never a
    // join the planner could turn into a scan of the bucket per key.)
    if (n.scope_not_null) {
        appendStringInfo(&from, " = %skb.%skb\n    AND coalesce((%skb.%skb", p, p, p, p);
        foreach (lc, n.scope) appendStringInfo(&from, ", %s", (const char *) lfirst(lc));
        appendStringInfo(&from, ") IN (SELECT %sk.%sb", p, p);
        for (int i = 0; i < r->nscope; i++) appendStringInfo(&from, ", %sk.%ss%d", p, p, i + 1);
        appendStringInfo(&from, " FROM %sk), false)", p);
    } else {
        appendStringInfo(&from, " = %skb.%skb\n    AND coalesce(%skk.%skey IN (SELECT ROW(%sk.%sb", p, p, p, p, p, p);
        for (int i = 0; i < r->nscope; i++) appendStringInfo(&from, ", %sk.%ss%d", p, p, i + 1);
        appendStringInfo(&from, ")::%s FROM %sk), false)", n.log, p);
    }
    StringInfoData bucket;
    initStringInfo(&bucket);
    append_bucket_call(&bucket, n, n.time);
    append_fresh_cte(&s, r, n, psprintf("%skb.%skb", p, p), from.data);
    // Fresh rows of every bucket from rebuild_from on, when there is one.
    Names all = n;
    all.p = psprintf("%sall_", p);
    resetStringInfo(&from);
    appendStringInfo(&from, "FROM %s\n  WHERE (SELECT %sfrom FROM %sr) IS NOT NULL\n    AND %s >= %s((SELECT %sfrom FROM %sr), %s)\n    AND ",
                     n.src, p, p, n.time, lo, p, p, n.bucket_args);
    append_bucket_call(&from, n, n.time);
    appendStringInfo(&from, " >= (SELECT %sfrom FROM %sr)", p, p);
    appendStringInfoString(&s, ",\n");
    append_fresh_cte(&s, r, all, bucket.data, from.data);
    // The rollup's rows of clean keys.
    appendStringInfoString(&s, "\nSELECT ");
    append_list(&s, n.tgt_dims, psprintf("%st", p));
    appendStringInfoString(&s, ", ");
    append_list(&s, n.tgt_measures, psprintf("%st", p));
    appendStringInfo(&s, "\nFROM %s AS %st\n", n.tgt, p);
    if (!n.scope_not_null) {
        // (The key as one column, as above.)
        appendStringInfoString(&s, "  CROSS JOIN LATERAL (SELECT ");
        append_key_row(&s, n.tgt_scope, psprintf("%st", p));
        appendStringInfo(&s, "::%s AS %skey) AS %stk\n", n.log, p, p);
    }
    appendStringInfo(&s, "WHERE %st.%s < coalesce((SELECT %sfrom FROM %sr), 'infinity'::%s)\n", p,
                     (const char *) linitial(n.tgt_dims), p, p, T);
    // (A hashed sub-plan again: a rollup row costs one probe, however many
    // keys are pending; NULL, from a rebuild row's NULL bucket, means clean.)
    if (n.scope_not_null) {
        appendStringInfoString(&s, "  AND NOT coalesce(");
        append_key_row(&s, n.tgt_scope, psprintf("%st", p));
        appendStringInfo(&s, " IN (SELECT %sk.%sb", p, p);
        for (int j = 0; j < r->nscope; j++) appendStringInfo(&s, ", %sk.%ss%d", p, p, j + 1);
        appendStringInfo(&s, " FROM %sk), false)", p);
    } else {
        appendStringInfo(&s, "  AND NOT coalesce(%stk.%skey IN (SELECT ROW(%sk.%sb", p, p, p, p);
        for (int j = 0; j < r->nscope; j++) appendStringInfo(&s, ", %sk.%ss%d", p, p, j + 1);
        appendStringInfo(&s, ")::%s FROM %sk), false)", n.log, p);
    }
    appendStringInfo(&s, "\nUNION ALL SELECT * FROM %sfresh\nUNION ALL SELECT * FROM %sfresh", p, all.p);
    return s.data;
}

}  // namespace memoria

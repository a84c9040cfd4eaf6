// view_source.cpp: rollups of views joining a fact table to the tables its
// dimensions come from (view_source.hpp says how they stay exact).
//
// The supported shape, checked on the view's stored query (and again after
// every DDL on the view or its tables): one FROM item, a tree of INNER and
// LEFT joins of plain or partitioned tables, each table but the fact joined
// to a table nearer the fact by equality of columns, the fact never on the
// nullable side; no aggregate, DISTINCT, set operation, LIMIT, sub-query,
// function in FROM, or volatile or time-dependent function.
#include "dirty_log.hpp"
#include "statements.hpp"
#include "view_source.hpp"

extern "C" {
#include "parser/parsetree.h"
#include "catalog/pg_operator.h"
#include "rewrite/rewriteHandler.h"
}

namespace memoria {

namespace {

// Conjunct: one ANDed condition of the view, and the tables it binds: a row
// of the view in which one of those tables is not null-extended satisfies it.
struct Conjunct {
    Node *expr;
    Bitmapset *binds;  // range table indexes
};

struct Walk {
    Query *q;
    List *rels;          // range table indexes of the tables, in FROM order
    Bitmapset *nullable; // tables on the nullable side of a LEFT JOIN
    List *conjuncts;     // of Conjunct *
    char *problem;
    const char *hint;
};

void add_conjuncts(Walk *w, Node *quals, Bitmapset *binds) {
    if (quals == NULL) return;
    ListCell *lc;
    foreach (lc, make_ands_implicit((Expr *) quals)) {
        Conjunct *c = (Conjunct *) palloc(sizeof(Conjunct));
        c->expr = (Node *) lfirst(lc);
        c->binds = binds;
        w->conjuncts = lappend(w->conjuncts, c);
    }
}

// walk_from: the tables under `node`; returns their range table indexes.
Bitmapset *walk_from(Walk *w, Node *node, bool nullable) {
    if (w->problem) return NULL;
    if (IsA(node, RangeTblRef)) {
        int idx = ((RangeTblRef *) node)->rtindex;
        RangeTblEntry *rte = rt_fetch(idx, w->q->rtable);
        char kind = rte->rtekind == RTE_RELATION ? rte->relkind : 0;
        if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE) {
            w->problem = psprintf("reads %s", kind == RELKIND_VIEW                 ? "another view"
                                              : kind != 0                          ? "a relation that is not a table"
                                              : rte->rtekind == RTE_SUBQUERY       ? "a sub-query"
                                              : rte->rtekind == RTE_FUNCTION       ? "a function in FROM"
                                                                                   : "something other than tables");
            w->hint = "A view source joins plain or partitioned tables only; write the view over the tables themselves.";
            return NULL;
        }
        if (rte->tablesample) {
            w->problem = pstrdup("samples a table (TABLESAMPLE)");
            w->hint = "A sample changes from one read to the next; a rollup recomputes from all rows.";
            return NULL;
        }
        w->rels = lappend_int(w->rels, idx);
        if (nullable) w->nullable = bms_add_member(w->nullable, idx);
        return bms_make_singleton(idx);
    }
    if (IsA(node, JoinExpr)) {
        JoinExpr *j = (JoinExpr *) node;
        if (j->jointype != JOIN_INNER && j->jointype != JOIN_LEFT) {
            w->problem = pstrdup("has a RIGHT or FULL JOIN");
            w->hint = "Write the fact table first and join the others to it with INNER or LEFT JOIN.";
            return NULL;
        }
        Bitmapset *left = walk_from(w, j->larg, nullable);
        Bitmapset *right = walk_from(w, j->rarg, nullable || j->jointype == JOIN_LEFT);
        Bitmapset *all = bms_union(left, right);
        // An INNER JOIN's condition holds in every row it produces; a LEFT
        // JOIN's only where its right side matched.
        add_conjuncts(w, j->quals, j->jointype == JOIN_INNER ? all : right);
        return all;
    }
    w->problem = pstrdup("has a FROM item memoria cannot follow");
    w->hint = "Write the view as one FROM item: the fact table joined to the others with JOIN ... ON.";
    return NULL;
}

// plain_var: the Var an expression is (through binary-compatible casts), or NULL.
Var *plain_var(Node *n) {
    while (n && IsA(n, RelabelType)) n = (Node *) ((RelabelType *) n)->arg;
    if (n && IsA(n, Var) && ((Var *) n)->varlevelsup == 0 && ((Var *) n)->varattno > 0) return (Var *) n;
    return NULL;
}

// equality: whether c is "a.x = b.y" over two tables, with an equality
// operator; the Vars in *l, *r.
bool equality(const Conjunct *c, Var **l, Var **r, Oid *op, Oid *collation) {
    if (!IsA(c->expr, OpExpr)) return false;
    OpExpr *e = (OpExpr *) c->expr;
    if (list_length(e->args) != 2) return false;
    *l = plain_var((Node *) linitial(e->args));
    *r = plain_var((Node *) lsecond(e->args));
    if (*l == NULL || *r == NULL || (*l)->varno == (*r)->varno) return false;
    Oid type = exprType((Node *) linitial(e->args));
    *op = e->opno;
    *collation = e->inputcollid;
    return op_mergejoinable(e->opno, type) || op_hashjoinable(e->opno, type);
}

const char *table_name(Walk *w, int idx) { return qualified_relation_name(rt_fetch(idx, w->q->rtable)->relid); }

}  // namespace

ViewJoin *analyze_view_source(Oid view, AttrNumber time_attnum, char **problem, const char **hint) {
    *problem = NULL;
    *hint = NULL;
    Relation rel = try_relation_open(view, AccessShareLock);
    if (rel == NULL) {
        *problem = pstrdup("no longer exists");
        return NULL;
    }
    Query *q = (Query *) copyObjectImpl(get_view_query(rel));
    int natts = RelationGetDescr(rel)->natts;
    relation_close(rel, AccessShareLock);
    Walk w;
    memset(&w, 0, sizeof w);
    w.q = q;
    const char *what = q->hasAggs || q->groupClause || q->havingQual || q->groupingSets ? "an aggregate or GROUP BY"
                       : q->hasWindowFuncs                                          ? "a window function"
                       : q->distinctClause                                          ? "DISTINCT"
                       : q->setOperations                                           ? "a set operation (UNION ...)"
                       : q->limitCount || q->limitOffset                            ? "LIMIT or OFFSET"
                       : q->hasSubLinks                                             ? "a sub-query"
                       : q->cteList                                                 ? "a WITH query"
                       : q->hasTargetSRFs                                           ? "a set-returning function"
                       : q->rowMarks                                                ? "FOR UPDATE or FOR SHARE"
                       : contain_mutable_functions((Node *) q->targetList) ||
                               contain_mutable_functions(q->jointree->quals)
                           ? "a volatile or time-dependent function"
                           : NULL;
    if (what == NULL && list_length(q->jointree->fromlist) != 1) what = "several FROM items (comma joins)";
    if (what) {
        *problem = psprintf("has %s", what);
        *hint = "A view source is the fact table joined (INNER or LEFT JOIN, on equality) to other tables, and "
                "nothing else; keep the rest in the rollup's measures and filter.";
        return NULL;
    }
    Bitmapset *all = walk_from(&w, (Node *) linitial(q->jointree->fromlist), false);
    if (w.problem) {
        *problem = w.problem;
        *hint = w.hint;
        return NULL;
    }
    add_conjuncts(&w, q->jointree->quals, all);
    ListCell *lc;
    foreach (lc, w.conjuncts) {
        Conjunct *c = (Conjunct *) lfirst(lc);
        c->expr = flatten_join_alias_vars(q, c->expr);
        if (contain_mutable_functions(c->expr)) {
            *problem = pstrdup("joins on a volatile or time-dependent function");
            *hint = "Join on columns.";
            return NULL;
        }
    }
    // The fact table: the time column's.
    TargetEntry *time_tle = get_tle_by_resno(q->targetList, time_attnum);
    Var *time_var = time_tle ? plain_var(flatten_join_alias_vars(q, (Node *) time_tle->expr)) : NULL;
    if (time_var == NULL || !list_member_int(w.rels, time_var->varno)) {
        *problem = pstrdup("shows the time column as an expression, not as a column of a table");
        *hint = "The time column must be a column of the fact table, as the view shows it.";
        return NULL;
    }
    int fact_idx = time_var->varno;
    if (bms_is_member(fact_idx, w.nullable)) {
        *problem = psprintf("has its fact table %s on the nullable side of a LEFT JOIN", table_name(&w, fact_idx));
        *hint = "Write the fact table first and LEFT JOIN the others to it.";
        return NULL;
    }
    ViewJoin *vj = (ViewJoin *) palloc0(sizeof(ViewJoin));
    vj->fact = rt_fetch(fact_idx, q->rtable)->relid;
    vj->natts = natts;
    vj->fact_attnum = (AttrNumber *) palloc0((natts + 1) * sizeof(AttrNumber));
    foreach (lc, q->targetList) {
        TargetEntry *tle = (TargetEntry *) lfirst(lc);
        if (tle->resjunk || tle->resno > natts) continue;
        Var *v = plain_var(flatten_join_alias_vars(q, (Node *) tle->expr));
        if (v && v->varno == fact_idx && exprType((Node *) v) == exprType((Node *) tle->expr))
            vj->fact_attnum[tle->resno - 1] = v->varattno;
    }
    // Each other table joins to one nearer the fact (its parent), by the
    // equalities that bind it; found nearest first.
    int nrels = list_length(w.rels);
    vj->tables = (LinkedTable *) palloc0(nrels * sizeof(LinkedTable));
    int *table_of = (int *) palloc0((list_length(q->rtable) + 1) * sizeof(int));  // rt index -> table + 2 (1: fact)
    table_of[fact_idx] = 1;
    List *reached = list_make1_int(fact_idx);
    foreach (lc, w.rels) {
        Oid relid = rt_fetch(lfirst_int(lc), q->rtable)->relid;
        ListCell *lc2;
        foreach (lc2, w.rels)
            if (lfirst_int(lc2) < lfirst_int(lc) && rt_fetch(lfirst_int(lc2), q->rtable)->relid == relid) {
                *problem = psprintf("reads table %s twice", qualified_relation_name(relid));
                *hint = "Each table may appear once in a view source.";
                return NULL;
            }
    }
    // A table and one of its partitions (a write to the partition is the
    // table's too: capture could log it for one of them only).
    foreach (lc, w.rels) {
        Oid relid = rt_fetch(lfirst_int(lc), q->rtable)->relid;
        if (!get_rel_relispartition(relid)) continue;
        ListCell *lc2;
        foreach (lc2, w.rels) {
            Oid other = rt_fetch(lfirst_int(lc2), q->rtable)->relid;
            if (list_member_oid(get_partition_ancestors(relid), other)) {
                *problem = psprintf("reads table %s and its partition %s", qualified_relation_name(other),
                                    qualified_relation_name(relid));
                *hint = "Each table may appear once in a view source, partitions included.";
                return NULL;
            }
        }
    }
    // System columns (ctid, xmin, ...) change without any trigger firing.
    List *vars = pull_var_clause((Node *) q->targetList, PVC_RECURSE_AGGREGATES | PVC_RECURSE_WINDOWFUNCS |
                                                             PVC_RECURSE_PLACEHOLDERS);
    foreach (lc, w.conjuncts) vars = list_concat(vars, pull_var_clause(((Conjunct *) lfirst(lc))->expr, 0));
    foreach (lc, vars) {
        Var *v = (Var *) lfirst(lc);
        if (v->varattno < 0) {
            *problem = psprintf("reads a system column of %s", table_name(&w, v->varno));
            *hint = "System columns (ctid, xmin, ...) change without any trigger firing; use ordinary columns.";
            return NULL;
        }
    }
    for (bool progress = true; progress;) {
        progress = false;
        foreach (lc, w.rels) {
            int idx = lfirst_int(lc);
            if (table_of[idx] != 0) continue;
            LinkedTable t;
            memset(&t, 0, sizeof t);
            int parent_idx = 0;
            ListCell *lc2;
            foreach (lc2, reached) {
                int p = lfirst_int(lc2);
                ListCell *lc3;
                foreach (lc3, w.conjuncts) {
                    Conjunct *c = (Conjunct *) lfirst(lc3);
                    Var *l, *r;
                    Oid op, collation;
                    if (!bms_is_member(idx, c->binds) || !equality(c, &l, &r, &op, &collation)) continue;
                    bool parent_left = l->varno == p && r->varno == idx;
                    if (!parent_left && !(r->varno == p && l->varno == idx)) continue;
                    if (t.nkeys == MAX_LINK_KEYS) continue;
                    t.keys[t.nkeys] = parent_left ? r->varattno : l->varattno;
                    t.parent_keys[t.nkeys] = parent_left ? l->varattno : r->varattno;
                    t.ops[t.nkeys] = op;
                    t.collations[t.nkeys] = collation;
                    t.parent_left[t.nkeys] = parent_left;
                    t.nkeys++;
                }
                if (t.nkeys > 0) {
                    parent_idx = p;
                    break;
                }
            }
            if (t.nkeys == 0) continue;
            t.rel = rt_fetch(idx, q->rtable)->relid;
            t.parent = table_of[parent_idx] - 2;
            vj->tables[vj->ntables] = t;
            table_of[idx] = 2 + vj->ntables++;
            vj->max_keys = Max(vj->max_keys, t.nkeys);
            reached = lappend_int(reached, idx);
            progress = true;
        }
    }
    for (int t = 0; t < vj->ntables; t++)
        for (int k = 0; k < vj->tables[t].nkeys; k++) {
            Oid type = getBaseType(get_atttype(vj->tables[t].rel, vj->tables[t].keys[k]));
            HeapTuple tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
            bool binary = HeapTupleIsValid(tup) && OidIsValid(((Form_pg_type) GETSTRUCT(tup))->typsend) &&
                          OidIsValid(((Form_pg_type) GETSTRUCT(tup))->typreceive);
            if (HeapTupleIsValid(tup)) ReleaseSysCache(tup);
            // (Arrays and composites: a list of them would be unnested into
            // their elements or fields.)
            bool plain = OidIsValid(type) && !OidIsValid(get_element_type(type)) && !type_is_rowtype(type);
            if (!binary || !plain) {
                *problem = psprintf("joins table %s on a column of type %s, which memoria cannot log",
                                    qualified_relation_name(vj->tables[t].rel), format_type_be(type));
                *hint = "memoria logs the join values of a changed row (in their binary form), and joins on scalar "
                        "columns only; join on another column.";
                return NULL;
            }
        }
    foreach (lc, w.rels)
        if (table_of[lfirst_int(lc)] == 0) {
            *problem = psprintf("joins table %s to the fact table %s by no equality of columns",
                                table_name(&w, lfirst_int(lc)), table_name(&w, fact_idx));
            *hint = "Join each table with ON <its column> = <a column of a table joined before it>: memoria follows "
                    "those equalities from a changed row to the fact rows it joins.";
            return NULL;
        }
    return vj;
}

void attach_view_join(Rollup *r, char **problem) {
    *problem = NULL;
    r->join = NULL;
    r->fact = r->source;
    r->fact_time_attnum = r->time_attnum;
    r->fact_scope_attnums = r->scope_attnums;
    if (get_rel_relkind(r->source) != RELKIND_VIEW) return;
    const char *hint;
    r->fact = InvalidOid;
    ViewJoin *vj = analyze_view_source(r->source, r->time_attnum, problem, &hint);
    if (vj == NULL) return;
    r->fact_scope_attnums = (AttrNumber *) palloc0((r->nscope + 1) * sizeof(AttrNumber));
    for (int i = 0; i < r->nscope; i++) {
        AttrNumber a = r->scope_attnums[i];
        r->fact_scope_attnums[i] = a >= 1 && a <= vj->natts ? vj->fact_attnum[a - 1] : 0;
        if (r->fact_scope_attnums[i] == 0) {
            *problem = psprintf("no longer shows scope column \"%s\" as a column of its fact table",
                                get_attname(r->source, a, true));
            return;
        }
    }
    r->fact = vj->fact;
    r->fact_time_attnum = vj->fact_attnum[r->time_attnum - 1];
    r->join = vj;
}

List *captured_tables(const Rollup *r) {
    if (!OidIsValid(r->fact)) return NIL;
    List *out = find_all_inheritors(r->fact, NoLock, NULL);
    if (r->join)
        for (int t = 0; t < r->join->ntables; t++)
            out = list_concat_unique_oid(out, find_all_inheritors(r->join->tables[t].rel, NoLock, NULL));
    return out;
}

Oid create_link_log(int32 id, int nkeys, Oid owner, Oid target) {
    StringInfoData cols;
    initStringInfo(&cols);
    appendStringInfoString(&cols, "link regclass NOT NULL");
    for (int k = 1; k <= nkeys; k++) appendStringInfo(&cols, ", k%d bytea", k);
    return create_log_table(psprintf("links_%d", id), cols.data, owner, target, false);
}

int link_log_keys(Oid link_log) {
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(link_log));
    if (!HeapTupleIsValid(tup)) return 0;
    int n = ((Form_pg_class) GETSTRUCT(tup))->relnatts - 1;
    ReleaseSysCache(tup);
    return n;
}

// operator_sql: "OPERATOR(schema.op)", which resolves to exactly that operator.
static char *operator_sql(Oid op) {
    HeapTuple tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(op));
    if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for operator %u", op);
    Form_pg_operator o = (Form_pg_operator) GETSTRUCT(tup);
    char *s = psprintf("OPERATOR(%s.%s)", quote_identifier(get_namespace_name(o->oprnamespace)),
                       NameStr(o->oprname));
    ReleaseSysCache(tup);
    return s;
}

// collate_sql: " COLLATE x" for the collation a join compares with (none: "").
static const char *collate_sql(Oid collation) {
    if (!OidIsValid(collation)) return "";
    return psprintf(" COLLATE %s", generate_collation_name(collation));
}

static char *alias(int t) { return psprintf("memoria_t%d", t + 1); }  // t = -1: the fact table

// append_path: FROM the fact table, inner-joined along the parents up to
// table t (not included).
static void append_path(StringInfo s, const Rollup *r, int t) {
    const ViewJoin *vj = r->join;
    int *path = (int *) palloc((vj->ntables + 1) * sizeof(int)), n = 0;
    for (int p = vj->tables[t].parent; p >= 0; p = vj->tables[p].parent) path[n++] = p;
    appendStringInfo(s, " FROM %s AS %s", qualified_relation_name(r->fact), alias(-1));
    for (int i = n - 1; i >= 0; i--) {
        const LinkedTable &lt = vj->tables[path[i]];
        appendStringInfo(s, " JOIN %s AS %s ON ", qualified_relation_name(lt.rel), alias(path[i]));
        Oid parent_rel = lt.parent < 0 ? r->fact : vj->tables[lt.parent].rel;
        for (int k = 0; k < lt.nkeys; k++) {
            char *pc = psprintf("%s.%s", alias(lt.parent), quote_identifier(get_attname(parent_rel, lt.parent_keys[k], false)));
            char *cc = psprintf("%s.%s", alias(path[i]), quote_identifier(get_attname(lt.rel, lt.keys[k], false)));
            cc = psprintf("%s%s", cc, collate_sql(lt.collations[k]));
            appendStringInfo(s, "%s%s %s %s", k ? " AND " : "", lt.parent_left[k] ? pc : cc, operator_sql(lt.ops[k]),
                             lt.parent_left[k] ? cc : pc);
        }
    }
}

char *linked_keys_sql(const Rollup *r, int t) {
    const LinkedTable &lt = r->join->tables[t];
    Oid parent_rel = lt.parent < 0 ? r->fact : r->join->tables[lt.parent].rel;
    const char *f = alias(-1);
    StringInfoData s;
    initStringInfo(&s);
    char *time = psprintf("%s.%s", f, quote_identifier(get_attname(r->fact, r->fact_time_attnum, false)));
    appendStringInfo(&s, "SELECT DISTINCT memoria.bucket(%s, $1, $2)", time);
    for (int i = 0; i < r->nscope; i++)
        appendStringInfo(&s, ", %s.%s", f, quote_identifier(get_attname(r->fact, r->fact_scope_attnums[i], false)));
    append_path(&s, r, t);
    // The logged values (arrays typed as the linked table's columns) against
    // its parent's columns, with the join's operators and collations.
    appendStringInfoString(&s, " JOIN ROWS FROM (");
    for (int k = 0; k < lt.nkeys; k++)
        appendStringInfo(&s, "%spg_catalog.unnest($%d::%s[])", k ? ", " : "", 3 + k,
                         format_type_be_qualified(get_atttype(lt.rel, lt.keys[k])));
    appendStringInfoString(&s, ") AS memoria_v(");
    for (int k = 0; k < lt.nkeys; k++) appendStringInfo(&s, "%sv%d", k ? ", " : "", k + 1);
    appendStringInfoString(&s, ") ON ");
    for (int k = 0; k < lt.nkeys; k++) {
        char *pc = psprintf("%s.%s", alias(lt.parent), quote_identifier(get_attname(parent_rel, lt.parent_keys[k], false)));
        char *vc = psprintf("memoria_v.v%d%s", k + 1, collate_sql(lt.collations[k]));
        appendStringInfo(&s, "%s%s %s %s", k ? " AND " : "", lt.parent_left[k] ? pc : vc, operator_sql(lt.ops[k]),
                         lt.parent_left[k] ? vc : pc);
    }
    appendStringInfo(&s, " WHERE %s IS NOT NULL", time);
    return s.data;
}

LinkValues *new_link_values(const Rollup *r) {
    LinkValues *lv = (LinkValues *) palloc0(sizeof(LinkValues));
    lv->r = r;
    lv->values = (List **) palloc0((r->join->ntables * MAX_LINK_KEYS + 1) * sizeof(List *));
    return lv;
}

// decode_key: a logged key value (its type's binary form) as a Datum.
static Datum decode_key(bytea *b, Oid type) {
    Oid recv, ioparam;
    getTypeBinaryInputInfo(type, &recv, &ioparam);
    StringInfoData buf;
    initStringInfo(&buf);
    appendBinaryStringInfo(&buf, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
    return OidReceiveFunctionCall(recv, &buf, ioparam, -1);
}

void add_link_values(LinkValues *lv, Datum link, const Datum *keys, const bool *nulls, int nkeys) {
    const ViewJoin *vj = lv->r->join;
    for (int t = 0; t < vj->ntables; t++) {
        const LinkedTable &lt = vj->tables[t];
        if (lt.rel != DatumGetObjectId(link)) continue;
        for (int k = 0; k < lt.nkeys; k++)
            if (k >= nkeys || nulls[k]) return;  // a NULL joins nothing
        for (int k = 0; k < lt.nkeys; k++)
            lv->values[t * MAX_LINK_KEYS + k] =
                lappend(lv->values[t * MAX_LINK_KEYS + k], PG_DETOAST_DATUM_COPY(keys[k]));
        return;
    }
    // (A table the view no longer reads: its replacement rebuilt the rollup.)
}

// decode_all: each logged value (bytea) replaced by its Datum (palloc'd).
static void decode_all(LinkValues *lv) {
    const ViewJoin *vj = lv->r->join;
    for (int t = 0; t < vj->ntables; t++)
        for (int k = 0; k < vj->tables[t].nkeys; k++) {
            Oid type = get_atttype(vj->tables[t].rel, vj->tables[t].keys[k]);
            ListCell *lc;
            foreach (lc, lv->values[t * MAX_LINK_KEYS + k]) {
                Datum *d = (Datum *) palloc(sizeof(Datum));
                *d = decode_key((bytea *) lfirst(lc), type);
                lfirst(lc) = d;
            }
        }
}

bool decode_link_values(LinkValues *lv) {
    // One subtransaction for all: a value that no longer decodes (an enum
    // label renamed since) fails the batch, and the caller recomputes the
    // whole rollup instead.
    MemoryContext mcxt = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;
    volatile bool ok = true;
    BeginInternalSubTransaction(NULL);
    MemoryContextSwitchTo(mcxt);
    PG_TRY();
    {
        decode_all(lv);
        ReleaseCurrentSubTransaction();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(mcxt);
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
        ok = false;
    }
    PG_END_TRY();
    MemoryContextSwitchTo(mcxt);
    CurrentResourceOwner = owner;
    return ok;
}

bool link_values_params(const LinkValues *lv, int t, Params *p) {
    const LinkedTable &lt = lv->r->join->tables[t];
    if (lv->values[t * MAX_LINK_KEYS] == NIL) return false;
    *p = bucket_params(lv->r);
    for (int k = 0; k < lt.nkeys; k++) {
        List *l = lv->values[t * MAX_LINK_KEYS + k];
        Oid type = get_atttype(lt.rel, lt.keys[k]);
        int16 typlen;
        bool typbyval;
        char typalign;
        get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
        Datum *d = (Datum *) palloc(list_length(l) * sizeof(Datum));
        int n = 0;
        ListCell *lc;
        foreach (lc, l) d[n++] = *(Datum *) lfirst(lc);
        p->types[p->n] = get_array_type(type);
        p->values[p->n++] = PointerGetDatum(construct_array(d, n, type, typlen, typbyval, typalign));
    }
    return true;
}

void translate_links(const Rollup *r) {
    if (!OidIsValid(r->link_log) || r->join == NULL) return;
    // 1. Claim: exactly the rows this snapshot sees; later ones wait.
    StringInfoData cols;
    initStringInfo(&cols);
    for (int k = 1; k <= link_log_keys(r->link_log); k++) appendStringInfo(&cols, ", k%d", k);
    spi_exec(psprintf("DELETE FROM %s RETURNING link%s", qualified_relation_name(r->link_log), cols.data), 0, NULL,
             NULL, NULL, false);
    if (SPI_processed == 0) return;
    // 2. The values, per linked table and key column.
    LinkValues *lv = new_link_values(r);
    uint64 nrows = SPI_processed;
    SPITupleTable *tt = SPI_tuptable;
    int natts = Min(tt->tupdesc->natts, 1 + MAX_LINK_KEYS);
    for (uint64 i = 0; i < nrows; i++) {
        Datum v[1 + MAX_LINK_KEYS];
        bool isnull[1 + MAX_LINK_KEYS];
        for (int a = 0; a < natts; a++) v[a] = SPI_getbinval(tt->vals[i], tt->tupdesc, a + 1, &isnull[a]);
        add_link_values(lv, v[0], v + 1, isnull + 1, natts - 1);
    }
    if (!decode_link_values(lv)) {
        spi_exec(mark_rebuild_sql(r), 0, NULL, NULL, NULL, false);
        return;
    }
    // 3. Each table's values become the keys of the fact rows they reach.
    for (int t = 0; t < r->join->ntables; t++) {
        Params p;
        if (!link_values_params(lv, t, &p)) continue;
        spi_exec(psprintf("INSERT INTO %s %s", qualified_relation_name(r->dirty_log), linked_keys_sql(r, t)), p.n,
                 p.types, p.values, NULL, false);
    }
}

}  // namespace memoria

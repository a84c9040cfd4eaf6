// additive.cpp: which rollups take the additive path, and their delta logs
// (additive.hpp).  The writer's side is delta_set.cpp and capture.cpp; the
// refresh's statements are in statements.cpp.
#include "citus.hpp"
#include "additive.hpp"
#include "dirty_log.hpp"
#include "expressions.hpp"
#include "guard.hpp"
#include "statements.hpp"

namespace memoria {

// writer_safe_function: a function the writer may evaluate: built in,
// immutable and leakproof (it raises no error that depends on its input).
static bool writer_unsafe_function(Oid func, void *context) {
    return func >= FirstNormalObjectId || func_volatile(func) != PROVOLATILE_IMMUTABLE || !get_func_leakproof(func);
}

static bool writer_unsafe_walker(Node *node, void *context) {
    if (node == NULL) return false;
    if (check_functions_in_node(node, writer_unsafe_function, context)) return true;
    switch (nodeTag(node)) {
        case T_Var: {
            Var *v = (Var *) node;
            return v->varno != 1 || v->varlevelsup != 0 || v->varattno <= 0;
        }
        case T_Const:
        case T_RelabelType:
        case T_BoolExpr:
        case T_NullTest:
        case T_BooleanTest:
        case T_OpExpr:
        case T_DistinctExpr:
        case T_NullIfExpr:
        case T_CaseExpr:
        case T_CaseWhen:
        case T_CoalesceExpr:
        case T_FuncExpr:
        case T_ScalarArrayOpExpr:
        case T_List:
            break;
        default:
            return true;  // anything else: not judged, so not taken
    }
    return expression_tree_walker(node, WALKER(writer_unsafe_walker), context);
}

static bool writer_safe(Node *node) { return node == NULL || !writer_unsafe_walker(node, NULL); }

// merge_kind: how an aggregate's partials merge; false if they do not.
static bool merge_kind(const Aggref *a, MergeKind *kind) {
    switch (a->aggfnoid) {
        case F_COUNT_: *kind = MergeKind::CountStar; return true;
        case F_COUNT_ANY: *kind = MergeKind::Count; return true;
        case F_SUM_INT2:
        case F_SUM_INT4: *kind = MergeKind::SumInt; return true;
        case F_SUM_INT8: *kind = MergeKind::SumInt8; return true;
        case F_SUM_NUMERIC: *kind = MergeKind::SumNumeric; return true;
        default: break;
    }
    if (a->aggfnoid >= FirstNormalObjectId || list_length(a->args) != 1) return false;
    const char *name = get_func_name(a->aggfnoid);
    if (strcmp(name, "min") != 0 && strcmp(name, "max") != 0) return false;
    // Without collation, and with a btree comparison the writer can call.
    Oid type = exprType((Node *) ((TargetEntry *) linitial(a->args))->expr);
    if (type_is_collatable(type) || !OidIsValid(lookup_type_cache(type, TYPECACHE_CMP_PROC)->cmp_proc)) return false;
    *kind = name[1] == 'i' ? MergeKind::Min : MergeKind::Max;
    return true;
}

char *additive_problem(const Rollup *r, AdditivePlan *plan) {
    if (r->join != NULL || r->fact != r->source) return pstrdup("its source is a view");
    if (r->updated_at_attnum != 0) return pstrdup("it finds inserts by their updated_at column");
    if (r->nmeasures > MAX_ADDITIVE_MEASURES || r->ndims > MAX_ADDITIVE_DIMS) return pstrdup("it has too many columns");
    for (int i = 0; r->dim_exprs && i < r->ndims; i++)
        if (r->dim_exprs[i]) return pstrdup("a dimension is an expression");
    Node *raw;
    char *problem;
    Query *q = analyze_expressions(r, &raw, &problem);
    if (q == NULL) return problem;
    memset(plan, 0, sizeof *plan);
    plan->nmeasures = r->nmeasures;
    for (int i = 0; i < r->nmeasures; i++) {
        TargetEntry *tle = (TargetEntry *) list_nth(q->targetList, i);
        Aggref *a = IsA(tle->expr, Aggref) ? (Aggref *) tle->expr : NULL;
        if (a == NULL || a->aggdistinct != NIL || a->aggorder != NIL || a->aggdirectargs != NIL ||
            a->aggkind != AGGKIND_NORMAL || a->aggvariadic || !merge_kind(a, &plan->kind[i]))
            return psprintf("measure \"%s\" is not count, sum of integers or numeric, or min/max of a type "
                            "without collation", r->measure_names[i]);
        plan->partial_type[i] = a->aggtype;
        if (plan->kind[i] != MergeKind::CountStar) {
            plan->arg[i] = ((TargetEntry *) linitial(a->args))->expr;
            plan->arg_type[i] = exprType((Node *) plan->arg[i]);
        }
        plan->agg_filter[i] = a->aggfilter;
        if (!writer_safe((Node *) plan->arg[i]) || !writer_safe((Node *) a->aggfilter))
            return psprintf("measure \"%s\" calls a function that is not a built-in leakproof one",
                            r->measure_names[i]);
        if (get_atttype(r->target, r->target_attnums[1 + r->ndims + i]) != a->aggtype)
            return psprintf("measure \"%s\" has another type than its column", r->measure_names[i]);
    }
    plan->filter = (Expr *) q->jointree->quals;
    if (!writer_safe((Node *) plan->filter)) return pstrdup("its filter calls a function that is not a built-in leakproof one");
    return NULL;
}

static const char *merge_word(MergeKind k) {
    return k == MergeKind::Min ? "min" : k == MergeKind::Max ? "max" : "sum";
}

char *delta_log_columns_sql(const Rollup *r, const AdditivePlan *plan) {
    StringInfoData cols;
    initStringInfo(&cols);
    appendStringInfo(&cols, "bucket %s", format_type_be(r->time_type));
    for (int i = 0; i < r->ndims; i++)
        appendStringInfo(&cols, ", g%d %s", i + 1, column_type_sql(r->source, r->dim_attnums[i], true));
    for (int i = 0; i < plan->nmeasures; i++)
        appendStringInfo(&cols, ", %s_%d %s", merge_word(plan->kind[i]), i + 1,
                         format_type_be_qualified(plan->partial_type[i]));
    return cols.data;
}

void settle_delta_log(Rollup *r, bool in_update) {
    if (!catalog_has_column("rollups", "delta_log")) return;  // (the SQL is older than 0.7.0)
    Oid old = r->delta_log;
    bool has_old = OidIsValid(old) && get_rel_name(old) != NULL;
    // The old log first: this waits for every writer that wrote partials to
    // it (they hold it until they end, and a writer through a partition
    // holds no lock on the source); later ones find it gone and write keys.
    // Then the source, which keeps new writers out until this commits.
    if (has_old) LockRelationOid(old, AccessExclusiveLock);
    LockRelationOid(r->source, ShareRowExclusiveLock);
    if (has_old) {
        // Its partials become dirty keys, as the rollup's owner, read with a
        // snapshot that sees every commit (the caller's may be older: under
        // REPEATABLE READ, taken before the wait).  Nobody else can change
        // the log now.
        SPI_connect();
        RollupSession session = enter_rollup_session(r);
        SPIPlanPtr plan = SPI_prepare(demote_deltas_sql(r), 0, NULL);
        if (plan == NULL || SPI_execute_snapshot(plan, NULL, NULL, GetLatestSnapshot(), InvalidSnapshot, false, false, 0) < 0)
            elog(ERROR, "memoria: could not turn the partials of rollup \"%s\" into keys", r->name);
        leave_rollup_session(session);
        SPI_finish();
        run_as_extension(psprintf("DROP TABLE %s", qualified_relation_name(old)));
    }
    r->delta_log = InvalidOid;
    AdditivePlan plan;
    // A shard of a Citus table (citus.hpp) keeps the recompute path: its
    // writer may be a distributed transaction, whose savepoints Citus sends
    // to the other nodes, so the writer's analysis cannot use one.
    if (!citus_shard(r->source) && additive_problem(r, &plan) == NULL) {
        // (A name left by a dropped rollup with the same id cannot exist:
        // the log goes with its rollup table.)
        r->delta_log = create_log_table(psprintf("deltas_%d", r->id), delta_log_columns_sql(r, &plan), r->owner,
                                        r->target, in_update, false);
    }
    set_delta_log(r->id, r->delta_log);
    // Writers' cached capture plans name the old log: make them look again.
    ListCell *lc;
    foreach (lc, find_all_inheritors(r->source, NoLock, NULL)) CacheInvalidateRelcacheByRelid(lfirst_oid(lc));
    CommandCounterIncrement();
}

}  // namespace memoria

using namespace memoria;

// memoria_internal.settle_delta_log(id): settle_delta_log for one rollup,
// with its writers held off (the update script; superusers only).
MEMORIA_FUNCTION(memoria_settle_delta_log) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL || r->restored || !OidIsValid(r->fact)) PG_RETURN_VOID();
    lock_rollup(r->id);
    settle_delta_log(r, creating_extension);
    PG_RETURN_VOID();
}

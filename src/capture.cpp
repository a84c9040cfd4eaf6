// capture.cpp: the capture trigger memoria.capture().
//
// Each call computes the key(s) of the rows written -- (dirty log, bucket,
// scope values): the rollup rows of that bucket and scope must be
// recomputed -- and adds them to this transaction's dirty set
// (dirty_set.cpp), which writes them to the dirty logs before commit.
// An inserted row of a rollup on the additive path (additive.hpp) is instead
// folded into its group's partial aggregate (delta_set.cpp): the rollup's
// filter, the measures' arguments and FILTERs are evaluated here, from
// expressions parsed once per (trigger, relation) in the rollup's session.
//
// Which rollup a trigger serves comes from memoria's own catalog, never from
// the trigger's arguments (anyone may attach memoria.capture() to a table of
// theirs): the trigger's name gives the rollup (triggers.cpp), and the table
// must be that rollup's source or one of its partitions.  Attribute numbers
// are the source's; for a partition they are mapped by column name, so
// partitions with other column orders work.  The dirty log's columns must
// have the types of the key's columns, or nothing is written.
#include "bucket.hpp"
#include "capture.hpp"
#include "catalog.hpp"
#include "delta_set.hpp"
#include "dirty_set.hpp"
#include "guard.hpp"
#include "triggers.hpp"
#include "view_source.hpp"

namespace memoria {

// The additive path (additive.hpp) for one (trigger, relation): how an
// inserted row becomes a group and the inputs of its partials.  Its memory
// is its own context.
struct DeltaCapture {
    MemoryContext context;
    const DeltaShape *shape;
    ExprContext *econtext;
    ExprState *filter;  // the rollup's WHERE; NULL: none
    ExprState *arg[MAX_ADDITIVE_MEASURES];         // NULL for count(*)
    ExprState *agg_filter[MAX_ADDITIVE_MEASURES];  // NULL: none
    AttrNumber dim_attnum[MAX_ADDITIVE_DIMS];
    TupleTableSlot *row_slot;  // a row trigger's row, for the expressions
};

// What the trigger needs to know about one (trigger, relation): cached per backend.
struct CaptureTarget {
    Oid trigger_oid;  // hash key
    Oid relid;
    Oid dirty_log;
    AttrNumber time_attnum;
    AttrNumber last_key_attnum;  // the highest of time_attnum and scope_attnum
    BucketSpec spec;
    bool trigger_mode;  // invalidation => 'trigger' (else 'updated_at')
    AttrNumber updated_at_attnum;  // updated_at mode: the stamp's column
    int nscope;
    AttrNumber scope_attnum[MAX_SCOPE];
    int16 scope_typlen[MAX_SCOPE];
    bool scope_typbyval[MAX_SCOPE];
    // A table a view source joins to its fact table (view_source.hpp): each
    // row's link key goes to the link log, in binary form; TRUNCATE to the dirty log.
    bool linked;
    Oid link_log, link;  // link: the linked table (a partition's parent)
    int link_log_keys;   // the link log's k columns
    int nkeys;
    AttrNumber key_attnum[MAX_LINK_KEYS];
    FmgrInfo key_out[MAX_LINK_KEYS];  // their types' send functions
    DeltaCapture *delta;  // inserts take the additive path; NULL: they dirty keys
};

static HTAB *capture_targets = NULL;           // backend lifetime
static MemoryContext capture_cache_context = NULL;
static StringInfoData key_buf;                 // scratch, in capture_cache_context
static StringInfoData last_key_buf;            // add_inserted_keys' previous key, likewise
// Additive-path contexts of invalidated targets: freed at the next trigger
// call (an invalidation may arrive while a trigger is using one).
static List *retired_contexts = NIL;

// ---------------------------------------------------------------------------
// The per-backend cache of trigger targets.
// ---------------------------------------------------------------------------

static void invalidate_capture_targets(Datum arg, Oid relid) {
    if (capture_targets == NULL) return;
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, capture_targets);
    CaptureTarget *t;
    while ((t = (CaptureTarget *) hash_seq_search(&status)) != NULL)
        if (relid == InvalidOid || t->relid == relid) {
            if (t->delta != NULL) {
                MemoryContext old = MemoryContextSwitchTo(capture_cache_context);
                retired_contexts = lappend(retired_contexts, t->delta->context);
                MemoryContextSwitchTo(old);
            }
            hash_search(capture_targets, &t->trigger_oid, HASH_REMOVE, NULL);
        }
}

static void free_retired_contexts(void) {
    if (retired_contexts == NIL) return;
    List *retired = retired_contexts;
    retired_contexts = NIL;
    ListCell *lc;
    foreach (lc, retired) MemoryContextDelete((MemoryContext) lfirst(lc));
    list_free(retired);
}


static void ensure_cache(void) {
    if (capture_targets != NULL) return;
    capture_cache_context = AllocSetContextCreate(TopMemoryContext, "memoria capture cache",
                                                  ALLOCSET_SMALL_SIZES);
    HASHCTL ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.keysize = sizeof(Oid);
    ctl.entrysize = sizeof(CaptureTarget);
    ctl.hcxt = capture_cache_context;
    capture_targets = hash_create("memoria capture targets", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    MemoryContext old = MemoryContextSwitchTo(capture_cache_context);
    initStringInfo(&key_buf);
    initStringInfo(&last_key_buf);
    MemoryContextSwitchTo(old);
}

// map_attnum: the attribute of rel that is source's column `attnum`.
static AttrNumber map_attnum(Oid source, Relation rel, AttrNumber attnum) {
    if (RelationGetRelid(rel) == source) return attnum;
    char *name = get_attname(source, attnum, false);
    AttrNumber mapped = get_attnum(RelationGetRelid(rel), name);
    if (mapped == InvalidAttrNumber)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                        errmsg("column \"%s\" of memoria source is missing from \"%s\"", name,
                               RelationGetRelationName(rel))));
    return mapped;
}

[[noreturn]] static void not_memorias_trigger(const Trigger *tg, Relation rel) {
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("trigger \"%s\" on \"%s\" is not a capture trigger memoria created", tg->tgname,
                           RelationGetRelationName(rel)),
                    errhint("memoria.capture() serves only the triggers memoria.create_rollup() makes.")));
    pg_unreachable();
}

// serves_table: whether rel is the table or one of its partitions.
static bool serves_table(Relation rel, Oid source) {
    if (RelationGetRelid(rel) == source) return true;
    if (!rel->rd_rel->relispartition) return false;
    return list_member_oid(get_partition_ancestors(RelationGetRelid(rel)), source);
}

// map_var_attnos: the source's attribute numbers in an expression made
// those of rel (a partition, whose columns may be in another order).
struct AttnoMap {
    Oid source;
    Relation rel;
};
static bool map_var_attnos(Node *node, void *context) {
    if (node == NULL) return false;
    if (IsA(node, Var)) {
        AttnoMap *m = (AttnoMap *) context;
        Var *v = (Var *) node;
        v->varattno = v->varattnosyn = map_attnum(m->source, m->rel, v->varattno);
        return false;
    }
    return expression_tree_walker(node, WALKER(map_var_attnos), context);
}

// prepare_expr: an expression of the plan, for rows of rel.
static ExprState *prepare_expr(Expr *e, AttnoMap *map, bool qual) {
    if (e == NULL) return NULL;
    Node *copy = (Node *) copyObjectImpl(e);
    if (RelationGetRelid(map->rel) != map->source) map_var_attnos(copy, map);
    Expr *planned = expression_planner((Expr *) copy);
    return qual ? ExecInitQual(make_ands_implicit(planned), NULL) : ExecInitExpr(planned, NULL);
}

// delta_capture_for: the additive path for rows of rel, or NULL when the
// rollup does not take it (or its delta log is not as the plan needs).
struct PlanJob {
    const Rollup *r;
    AdditivePlan *plan;
    bool ok;
};

static DeltaCapture *delta_capture_for(const Rollup *r, Relation rel, const CaptureTarget *t) {
    // A restored rollup not adopted yet: its table already counts the rows a
    // parallel pg_restore may still load (their keys are a harmless
    // recompute; partials would count them twice).
    if (!OidIsValid(r->delta_log) || !t->trigger_mode || t->nscope > MAX_SCOPE || r->restored) return NULL;
    // The analysis in a subtransaction, rolled back: whatever it leaves goes
    // (the expressions' trees stay, in this memory context).
    AdditivePlan plan;
    PlanJob job = {r, &plan, false};
    (void) try_in_subtransaction(
        [](void *arg) {
            PlanJob *j = (PlanJob *) arg;
            j->ok = additive_problem(j->r, j->plan) == NULL;
        },
        &job, false);
    if (!job.ok) return NULL;
    DeltaShape s;
    memset(&s, 0, sizeof s);
    s.log = r->delta_log;
    s.dirty_log = r->dirty_log;
    s.time_type = r->time_type;
    s.ndims = r->ndims;
    TupleDesc desc = RelationGetDescr(rel);
    AttrNumber dim_attnum[MAX_ADDITIVE_DIMS];
    for (int i = 0; i < r->ndims; i++) {
        dim_attnum[i] = map_attnum(r->source, rel, r->dim_attnums[i]);
        Form_pg_attribute att = TupleDescAttr(desc, dim_attnum[i] - 1);
        s.dim_type[i] = getBaseType(att->atttypid);
        s.dim_typlen[i] = att->attlen;
        s.dim_typbyval[i] = att->attbyval;
    }
    s.nscope = r->nscope;
    for (int i = 0; i < r->nscope; i++)
        for (int j = 0; j < r->ndims; j++)
            if (r->dim_attnums[j] == r->scope_attnums[i]) s.scope_dim[i] = j;
    s.nmeasures = plan.nmeasures;
    for (int i = 0; i < plan.nmeasures; i++) {
        s.kind[i] = plan.kind[i];
        s.partial_type[i] = plan.partial_type[i];
        if (OidIsValid(plan.arg_type[i])) get_typlenbyval(plan.arg_type[i], &s.arg_typlen[i], &s.arg_typbyval[i]);
        if (plan.kind[i] == MergeKind::Min || plan.kind[i] == MergeKind::Max)
            s.cmp[i] = &lookup_type_cache(plan.arg_type[i], TYPECACHE_CMP_PROC_FINFO)->cmp_proc_finfo;
    }
    MemoryContext context = AllocSetContextCreate(capture_cache_context, "memoria delta capture", ALLOCSET_SMALL_SIZES);
    MemoryContext old = MemoryContextSwitchTo(context);
    DeltaCapture *d = (DeltaCapture *) palloc0(sizeof(DeltaCapture));
    d->context = context;
    d->shape = remember_delta_shape(&s);
    memcpy(d->dim_attnum, dim_attnum, sizeof dim_attnum);
    AttnoMap map = {r->source, rel};
    d->filter = prepare_expr(plan.filter, &map, true);
    for (int i = 0; i < plan.nmeasures; i++) {
        d->arg[i] = prepare_expr(plan.arg[i], &map, false);
        d->agg_filter[i] = prepare_expr(plan.agg_filter[i], &map, true);
    }
    d->econtext = CreateStandaloneExprContext();
    d->row_slot = MakeSingleTupleTableSlot(CreateTupleDescCopy(desc), &TTSOpsHeapTuple);
    MemoryContextSwitchTo(old);
    return d;
}

static CaptureTarget *capture_target_for(TriggerData *td) {
    ensure_cache();
    const Trigger *tg = td->tg_trigger;
    bool found;
    CaptureTarget *t = (CaptureTarget *) hash_search(capture_targets, &tg->tgoid, HASH_FIND, &found);
    if (found) return t;
    Relation rel = td->tg_relation;
    TriggerKind kind;
    int32 id;
    if (!parse_trigger_name(tg->tgname, &kind, &id)) not_memorias_trigger(tg, rel);
    const Rollup *r = read_rollup_for_capture(id);
    // No such rollup: nothing to record (a parallel pg_restore loads rows
    // into partitions of a source whose triggers are back before memoria's
    // catalog is; the restored rollup table already counts those rows).
    // Not cached: the rollup may show up later in this session.
    if (r == NULL) return NULL;
    if (!OidIsValid(r->fact)) {
        char *problem;
        attach_view_join((Rollup *) r, &problem);
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("memoria rollup \"%s\" cannot capture this write: its source view %s", r->name,
                               problem ? problem : "is not as it was"),
                        errhint("Drop the rollup with memoria.drop_rollup() and create it again.")));
    }
    int linked = -1;  // the fact table
    if (!serves_table(rel, r->fact)) {
        linked = 0;
        while (r->join != NULL && linked < r->join->ntables && !serves_table(rel, r->join->tables[linked].rel))
            linked++;
        if (r->join == NULL || linked == r->join->ntables) not_memorias_trigger(tg, rel);
    }
    // Compute everything first so that an ERROR leaves no half-built entry.
    CaptureTarget tmp;
    memset(&tmp, 0, sizeof tmp);
    TupleDesc desc = RelationGetDescr(rel);
    tmp.trigger_oid = tg->tgoid;
    tmp.relid = RelationGetRelid(rel);
    tmp.dirty_log = r->dirty_log;
    tmp.trigger_mode = r->updated_at_attnum == 0;
    tmp.nscope = r->nscope;
    if (r->nscope > MAX_SCOPE) elog(ERROR, "memoria rollup \"%s\" has too many scope columns", r->name);
    LogShape shape;
    shape.log = r->dirty_log;
    shape.natts = 1 + r->nscope;
    shape.types[0] = r->time_type;
    for (int i = 0; i < r->nscope; i++) shape.types[1 + i] = getBaseType(get_atttype(r->fact, r->fact_scope_attnums[i]));
    if (linked >= 0) {
        // Its rows' link keys, for the link log; its TRUNCATE, for the dirty log.
        const LinkedTable &lt = r->join->tables[linked];
        tmp.linked = true;
        tmp.link = lt.rel;
        tmp.link_log = r->link_log;
        tmp.link_log_keys = link_log_keys(r->link_log);
        tmp.nkeys = lt.nkeys;
        for (int k = 0; k < lt.nkeys; k++) {
            tmp.key_attnum[k] = map_attnum(lt.rel, rel, lt.keys[k]);
            Oid send;
            bool varlena;
            getTypeBinaryOutputInfo(TupleDescAttr(desc, tmp.key_attnum[k] - 1)->atttypid, &send, &varlena);
            fmgr_info_cxt(send, &tmp.key_out[k], capture_cache_context);
        }
        LogShape links;
        links.log = r->link_log;
        links.natts = 1 + tmp.link_log_keys;
        links.types[0] = REGCLASSOID;
        for (int k = 1; k < links.natts; k++) links.types[k] = BYTEAOID;
        Relation log = try_table_open(r->link_log, AccessShareLock);
        if (log == NULL)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                            errmsg("the link log of memoria rollup \"%s\" is missing", r->name),
                            errhint("Drop the rollup with memoria.drop_rollup() and create it again.")));
        check_log_shape(log, &links);
        table_close(log, AccessShareLock);
        remember_log_shape(&links);
    } else {
        tmp.time_attnum = map_attnum(r->fact, rel, r->fact_time_attnum);
        TimeKind time_kind;
        Oid time_type = TupleDescAttr(desc, tmp.time_attnum - 1)->atttypid;
        if (!time_kind_of(time_type, &time_kind) || time_kind != r->kind)
            ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                            errmsg("time column of \"%s\" no longer has the type rollup \"%s\" was made for",
                                   RelationGetRelationName(rel), r->name),
                            errhint("Drop the rollup with memoria.drop_rollup() and create it again.")));
        pg_tz *tz = time_kind == TimeKind::Timestamptz ? lookup_time_zone(r->time_zone) : NULL;
        bucket_spec_init(&tmp.spec, time_kind, r->width_usecs, tz);
        shape.types[0] = time_type;
        for (int i = 0; i < tmp.nscope; i++) {
            AttrNumber a = map_attnum(r->fact, rel, r->fact_scope_attnums[i]);
            Form_pg_attribute att = TupleDescAttr(desc, a - 1);
            tmp.scope_attnum[i] = a;
            tmp.scope_typlen[i] = att->attlen;
            tmp.scope_typbyval[i] = att->attbyval;
            shape.types[1 + i] = getBaseType(att->atttypid);  // the log has no domains
        }
        if (!tmp.trigger_mode) tmp.updated_at_attnum = map_attnum(r->fact, rel, r->updated_at_attnum);
        tmp.last_key_attnum = tmp.time_attnum;
        for (int i = 0; i < tmp.nscope; i++) tmp.last_key_attnum = Max(tmp.last_key_attnum, tmp.scope_attnum[i]);
    }
    Relation log = try_table_open(r->dirty_log, AccessShareLock);
    if (log == NULL)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("the dirty log of memoria rollup \"%s\" is missing", r->name),
                        errhint("Drop the rollup with memoria.drop_rollup() and create it again.")));
    check_log_shape(log, &shape);
    table_close(log, AccessShareLock);
    remember_log_shape(&shape);
    if (linked < 0) tmp.delta = delta_capture_for(r, rel, &tmp);
    t = (CaptureTarget *) hash_search(capture_targets, &tg->tgoid, HASH_ENTER, &found);
    *t = tmp;
    return t;
}

// build_key: the serialized key of one source row, in key_buf; false for a
// row with a NULL time, which is not rolled up and so dirties nothing.
// get(attnum, &isnull) reads a column of the row.
template <typename Getter>
static bool build_key(CaptureTarget *t, Getter get) {
    bool isnull;
    Datum time = get(t->time_attnum, &isnull);
    if (isnull) return false;
    Datum bucket = bucket_of(&t->spec, time);
    key_start(&key_buf, t->dirty_log, t->nscope);
    key_put_bucket(&key_buf, t->spec.kind == TimeKind::Date ? (int64) DatumGetDateADT(bucket) : DatumGetInt64(bucket));
    for (int i = 0; i < t->nscope; i++) {
        Datum v = get(t->scope_attnum[i], &isnull);
        if (!isnull) key_put_scope(&key_buf, i, v, t->scope_typlen[i], t->scope_typbyval[i]);
    }
    return true;
}

static bool build_row_key(CaptureTarget *t, HeapTuple tuple, TupleDesc desc) {
    return build_key(t, [&](AttrNumber a, bool *isnull) { return heap_getattr(tuple, a, desc, isnull); });
}

static void add_row_key(CaptureTarget *t, HeapTuple tuple, TupleDesc desc) {
    if (build_row_key(t, tuple, desc)) dirty_set_add(key_buf.data, key_buf.len);
}

// add_delta_row: the additive path: an inserted row (in slot) folded into
// its group's partials; nothing for a row the filter leaves out or with a
// NULL time.
static void add_delta_row(CaptureTarget *t, TupleTableSlot *slot) {
    DeltaCapture *d = t->delta;
    const DeltaShape *s = d->shape;
    ExprContext *ec = d->econtext;
    ResetExprContext(ec);
    ec->ecxt_scantuple = slot;
    MemoryContext old = MemoryContextSwitchTo(ec->ecxt_per_tuple_memory);
    bool isnull;
    Datum time = slot_getattr(slot, t->time_attnum, &isnull);
    if (!isnull && (d->filter == NULL || ExecQual(d->filter, ec))) {
        Datum bucket = bucket_of(&t->spec, time);
        key_start(&key_buf, s->log, s->ndims);
        key_put_bucket(&key_buf,
                       t->spec.kind == TimeKind::Date ? (int64) DatumGetDateADT(bucket) : DatumGetInt64(bucket));
        for (int i = 0; i < s->ndims; i++) {
            Datum v = slot_getattr(slot, d->dim_attnum[i], &isnull);
            if (!isnull) key_put_scope(&key_buf, i, v, s->dim_typlen[i], s->dim_typbyval[i]);
        }
        Datum values[MAX_ADDITIVE_MEASURES];
        bool skip[MAX_ADDITIVE_MEASURES];
        for (int i = 0; i < s->nmeasures; i++) {
            values[i] = (Datum) 0;
            skip[i] = d->agg_filter[i] != NULL && !ExecQual(d->agg_filter[i], ec);
            if (!skip[i] && d->arg[i] != NULL) {
                values[i] = ExecEvalExpr(d->arg[i], ec, &isnull);
                skip[i] = isnull;
            }
        }
        delta_add(s, key_buf.data, key_buf.len, values, skip);
    }
    MemoryContextSwitchTo(old);
}

// additive: whether this write takes the additive path.  Not for the apply
// worker of logical replication (replica role): a FOR ALL TABLES publication
// brings the publisher's partials along, in the same transaction as the rows
// they count; the keys written here then have those partials recomputed
// away rather than added to what this server counts itself.
static bool additive(const CaptureTarget *t) {
    return t->delta != NULL && additive_path && SessionReplicationRole != SESSION_REPLICATION_ROLE_REPLICA;
}

static void add_inserted_row(CaptureTarget *t, HeapTuple tuple, TupleDesc desc) {
    if (!additive(t)) {
        add_row_key(t, tuple, desc);
        return;
    }
    ExecStoreHeapTuple(tuple, t->delta->row_slot, false);
    add_delta_row(t, t->delta->row_slot);
    ExecClearTuple(t->delta->row_slot);
}

// add_inserted_keys: the AFTER INSERT statement trigger; the key of every
// row of the statement's transition table.  This loop is most of what a
// bulk load pays memoria, so it reads each row's columns in one pass and
// skips the set for a key the row before had (time-ordered loads repeat
// keys): that key is already in the set, added in this subtransaction.
static void add_inserted_keys(CaptureTarget *t, TriggerData *td) {
    Tuplestorestate *rows = td->tg_newtable;
    if (rows == NULL)
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("memoria.capture(): statement trigger \"%s\" has no NEW TABLE",
                               td->tg_trigger->tgname)));
    TupleTableSlot *slot = MakeSingleTupleTableSlot(RelationGetDescr(td->tg_relation), &TTSOpsMinimalTuple);
    bool additive_rows = additive(t);
    // Detoasted scope values are copies: freed row by row.  (Not the rows
    // themselves: the slot frees a row read back from disk.)
    MemoryContext row_context = AllocSetContextCreate(CurrentMemoryContext, "memoria inserted row",
                                                      ALLOCSET_SMALL_SIZES);
    resetStringInfo(&last_key_buf);  // empty: none yet
    tuplestore_rescan(rows);
    while (tuplestore_gettupleslot(rows, true, false, slot)) {
        if (additive_rows) {
            add_delta_row(t, slot);
            continue;
        }
        slot_getsomeattrs(slot, t->last_key_attnum);
        MemoryContext old = MemoryContextSwitchTo(row_context);
        bool has_key = build_key(t, [&](AttrNumber a, bool *isnull) {
            *isnull = slot->tts_isnull[a - 1];
            return slot->tts_values[a - 1];
        });
        MemoryContextSwitchTo(old);
        if (has_key && (key_buf.len != last_key_buf.len || memcmp(key_buf.data, last_key_buf.data, key_buf.len) != 0)) {
            dirty_set_add(key_buf.data, key_buf.len);
            std::swap(key_buf, last_key_buf);  // (the next key_start empties key_buf)
        }
        MemoryContextReset(row_context);
    }
    MemoryContextDelete(row_context);
    ExecDropSingleTupleTableSlot(slot);
}

// stamped_before_transaction: updated_at mode: the row's stamp is older than
// this transaction's start, so a refresh may already have scanned past it
// (an UPDATE that did not stamp, or one applied by logical replication with
// the publisher's stamp).
static bool stamped_before_transaction(const CaptureTarget *t, HeapTuple row, TupleDesc desc) {
    bool isnull;
    Datum stamp = heap_getattr(row, t->updated_at_attnum, desc, &isnull);
    return isnull || DatumGetTimestampTz(stamp) < GetCurrentTransactionStartTimestamp();
}

// add_moved_row_keys: updated_at mode's UPDATE.  A row that moved to another
// key dirties the key it left and its new one; a row that stayed, its key
// unless it is stamped in this transaction (the scan finds it then).
static void add_moved_row_keys(CaptureTarget *t, HeapTuple old_row, HeapTuple new_row, TupleDesc desc) {
    bool had_old = build_row_key(t, old_row, desc);
    int old_len = had_old ? key_buf.len : 0;
    char *old_key = (char *) palloc(old_len + 1);
    if (had_old) memcpy(old_key, key_buf.data, old_len);
    bool has_new = build_row_key(t, new_row, desc);
    bool same = had_old && has_new && old_len == key_buf.len && memcmp(old_key, key_buf.data, old_len) == 0;
    if (has_new && (!same || stamped_before_transaction(t, new_row, desc))) dirty_set_add(key_buf.data, key_buf.len);
    if (!same && had_old) dirty_set_add(old_key, old_len);
    pfree(old_key);
}

// add_link_key: a linked table's row: its link key (the linked table, the
// values in their binary form); nothing when one is NULL, which joins no row.
static void add_link_key(CaptureTarget *t, HeapTuple tuple, TupleDesc desc) {
    key_start(&key_buf, t->link_log, t->link_log_keys);
    key_put_bucket(&key_buf, (int64) t->link);
    for (int k = 0; k < t->nkeys; k++) {
        bool isnull;
        Datum v = heap_getattr(tuple, t->key_attnum[k], desc, &isnull);
        if (isnull) return;
        key_put_scope(&key_buf, k, PointerGetDatum(SendFunctionCall(&t->key_out[k], v)), -1, false);
    }
    dirty_set_add(key_buf.data, key_buf.len);
}

// add_rebuild_key: TRUNCATE; a key whose bucket and scope are all NULL.
static void add_rebuild_key(CaptureTarget *t) {
    key_start(&key_buf, t->dirty_log, t->nscope);
    dirty_set_add(key_buf.data, key_buf.len);
}

void init_capture(void) {
    CacheRegisterRelcacheCallback(invalidate_capture_targets, (Datum) 0);
    init_dirty_set();
}

}  // namespace memoria

using namespace memoria;

// memoria.capture(): every memoria trigger (triggers.cpp): row triggers for
// INSERT, UPDATE and DELETE (AFTER; BEFORE as made before 0.3.0), the AFTER
// INSERT statement trigger with a NEW TABLE, and BEFORE TRUNCATE.
MEMORIA_FUNCTION(memoria_capture) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("memoria.capture() must be called as a trigger")));
    TriggerData *td = (TriggerData *) fcinfo->context;
    TupleDesc desc = RelationGetDescr(td->tg_relation);
    TriggerEvent ev = td->tg_event;
    // What a row trigger returns: the row, unchanged (NULL after the fact).
    Datum row_result = PointerGetDatum(TRIGGER_FIRED_BEFORE(ev) && TRIGGER_FIRED_FOR_ROW(ev)
                                           ? (TRIGGER_FIRED_BY_UPDATE(ev) ? td->tg_newtuple : td->tg_trigtuple)
                                           : NULL);
    free_retired_contexts();
    CaptureTarget *t = capture_target_for(td);
    if (t == NULL) return row_result;  // a rollup not in the catalog (yet)
    if (TRIGGER_FIRED_BY_TRUNCATE(ev)) {
        add_rebuild_key(t);
        return PointerGetDatum(NULL);
    }
    if (!TRIGGER_FIRED_FOR_ROW(ev)) {
        if (!TRIGGER_FIRED_AFTER(ev) || !TRIGGER_FIRED_BY_INSERT(ev))
            ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                            errmsg("memoria.capture() as a statement trigger must be AFTER INSERT or BEFORE TRUNCATE")));
        if (t->linked) not_memorias_trigger(td->tg_trigger, td->tg_relation);  // (memoria puts row triggers there)
        add_inserted_keys(t, td);
        return PointerGetDatum(NULL);
    }
    if (t->linked) {
        add_link_key(t, td->tg_trigtuple, desc);
        if (TRIGGER_FIRED_BY_UPDATE(ev)) add_link_key(t, td->tg_newtuple, desc);
        return row_result;
    }
    if (TRIGGER_FIRED_BY_UPDATE(ev)) {
        // trigger mode logs both keys; updated_at mode (whose scan finds
        // the new row) only a moved row's.
        if (t->trigger_mode) {
            add_row_key(t, td->tg_trigtuple, desc);
            add_row_key(t, td->tg_newtuple, desc);
        } else {
            add_moved_row_keys(t, td->tg_trigtuple, td->tg_newtuple, desc);
        }
        return row_result;
    }
    // An INSERT after the fact may take the additive path (a BEFORE
    // trigger's row may never be stored).
    if (TRIGGER_FIRED_BY_INSERT(ev) && TRIGGER_FIRED_AFTER(ev))
        add_inserted_row(t, td->tg_trigtuple, desc);
    else
        add_row_key(t, td->tg_trigtuple, desc);
    return row_result;
}

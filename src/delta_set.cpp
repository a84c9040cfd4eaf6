// delta_set.cpp: the additive path's per-transaction partial aggregates
// (delta_set.hpp).
//
// Each inserted row of a rollup on the additive path is folded into its
// group's partials (counts and integer sums as int8, numeric sums, min and
// max), kept in a hash table under TopTransactionContext.  The groups are
// written to the delta logs, one row each, just before the transaction
// commits or prepares (dirty_set.cpp's flush calls flush_deltas first),
// and early whenever they hold MAX_DELTA_BYTES; written groups are
// forgotten, so memory stays bounded.
//
// Partials must count exactly the rows that commit.  So they are written
// only at the top level of the transaction: a subtransaction that rolls back
// takes its rows with it, and the partials it touched become *poisoned*:
// they go to the dirty log as dirty keys instead (the refresh recomputes
// them from the rows that did commit).  The same happens to a group whose
// sum would overflow, to every group when a subtransaction gathers more
// than MAX_DELTA_BYTES or asks for a flush, and to groups whose delta log is
// gone or no longer has their shape.
#include "delta_set.hpp"
#include "dirty_log.hpp"
#include "guard.hpp"

namespace memoria {

// Groups kept before they are written (at the top level) or made keys (in a
// subtransaction): about 8 MB.  A group written is forgotten, so the more a
// transaction keeps, the fewer rows it writes for keys it sees again.
static const Size MAX_DELTA_BYTES = 8 * 1024 * 1024;

struct DeltaGroup {
    uint32 hash;
    uint32 len;
    int level;  // the deepest subtransaction level that changed it
    bool poisoned;
    const DeltaShape *shape;
    char *bytes;
    Datum *vals;  // per measure: int8 for counts and integer sums
    bool *nulls;  // no input yet (sums, min, max)
};

// A slot of the table: the group's hash beside it, so that a probe touches
// the group's memory only when the hashes match.
struct DeltaSlot {
    uint32 hash;
    DeltaGroup *group;
};

static MemoryContext delta_context = NULL;  // child of TopTransactionContext
static DeltaSlot *groups = NULL;            // open addressing, at most 3/4 full
// Groups are carved from blocks of GROUP_BLOCK bytes (palloc would round
// each up to a power of two): freed all at once with delta_context.
static const Size GROUP_BLOCK = 256 * 1024;
static char *block_free = NULL;
static Size block_left = 0;
static uint32 capacity = 0, count = 0, poisoned = 0;
static int max_level = 0;
static bool flushing = false;

static MemoryContext shape_context = NULL;  // backend lifetime
static List *shapes = NIL;                  // of DeltaShape *

static void reset_state(void) {
    delta_context = NULL;
    groups = NULL;
    block_free = NULL;
    block_left = 0;
    capacity = count = poisoned = 0;
    max_level = 0;
}

static DeltaSlot *find_group(DeltaSlot *table, uint32 cap, uint32 hash, const char *bytes, uint32 len) {
    uint32 mask = cap - 1;
    for (uint32 i = hash & mask;; i = (i + 1) & mask) {
        DeltaSlot *s = &table[i];
        if (s->group == NULL ||
            (s->hash == hash && s->group->len == len && memcmp(s->group->bytes, bytes, len) == 0))
            return s;
    }
}

static DeltaSlot *new_table(uint32 cap) {
    return (DeltaSlot *) MemoryContextAllocZero(delta_context, cap * sizeof(DeltaSlot));
}

static void put_group(DeltaSlot *table, uint32 cap, DeltaGroup *g) {
    DeltaSlot *s = find_group(table, cap, g->hash, g->bytes, g->len);
    s->hash = g->hash;
    s->group = g;
}

static void grow(void) {
    uint32 cap = capacity * 2;
    DeltaSlot *table = new_table(cap);
    for (uint32 i = 0; i < capacity; i++)
        if (groups[i].group != NULL) put_group(table, cap, groups[i].group);
    pfree(groups);
    groups = table;
    capacity = cap;
}

// carve: size bytes (zeroed) for a group, from the current block.
static char *carve(Size size) {
    size = MAXALIGN(size);
    if (size > block_left) {
        Size block = Max(GROUP_BLOCK, size);
        block_free = (char *) MemoryContextAlloc(delta_context, block);
        block_left = block;
    }
    char *p = block_free;
    block_free += size;
    block_left -= size;
    memset(p, 0, size);
    return p;
}

// Key layout (dirty_set.hpp): the log's oid, a null flag per column
// (bucket, then the dimensions), the bucket as an int64, the non-null values.
static void decode_group(const DeltaGroup *g, Datum *values, bool *isnull) {
    const DeltaShape *s = g->shape;
    const char *flags = g->bytes + sizeof(Oid);
    const char *p = flags + 1 + s->ndims;
    int64 b;
    memcpy(&b, p, sizeof b);
    p += sizeof b;
    isnull[0] = false;
    values[0] = s->time_type == DATEOID ? DateADTGetDatum((DateADT) b) : Int64GetDatum(b);
    for (int i = 0; i < s->ndims; i++) {
        isnull[1 + i] = flags[1 + i] != 0;
        values[1 + i] = isnull[1 + i] ? (Datum) 0 : key_read_value(&p, s->dim_typlen[i], s->dim_typbyval[i]);
    }
}

// demote: the group's key (bucket and scope) as a dirty key.
static void demote(const DeltaGroup *g) {
    const DeltaShape *s = g->shape;
    Datum values[1 + MAX_ADDITIVE_DIMS];
    bool isnull[1 + MAX_ADDITIVE_DIMS];
    decode_group(g, values, isnull);
    StringInfoData key;
    initStringInfo(&key);
    key_start(&key, s->dirty_log, s->nscope);
    int64 b;
    memcpy(&b, g->bytes + sizeof(Oid) + 1 + s->ndims, sizeof b);
    key_put_bucket(&key, b);
    for (int i = 0; i < s->nscope; i++) {
        int d = s->scope_dim[i];
        if (!isnull[1 + d]) key_put_scope(&key, i, values[1 + d], s->dim_typlen[d], s->dim_typbyval[d]);
    }
    dirty_set_add(key.data, key.len, false);
    pfree(key.data);
}

// forget: drop every group (their memory with them).
static void forget(void) {
    if (delta_context != NULL) MemoryContextDelete(delta_context);
    reset_state();
}

// demote_where: the groups `pick` accepts become dirty keys and leave.
static void demote_where(bool (*pick)(const DeltaGroup *, const void *), const void *arg) {
    if (groups == NULL) return;
    DeltaSlot *table = new_table(capacity);
    uint32 kept = 0;
    poisoned = 0;
    for (uint32 i = 0; i < capacity; i++) {
        DeltaGroup *g = groups[i].group;
        if (g == NULL) continue;
        if (pick(g, arg)) {
            demote(g);
        } else {
            put_group(table, capacity, g);
            kept++;
            if (g->poisoned) poisoned++;
        }
    }
    pfree(groups);
    groups = table;
    count = kept;
}

static bool pick_all(const DeltaGroup *, const void *) { return true; }
static bool pick_log(const DeltaGroup *g, const void *log) { return g->shape->log == *(const Oid *) log; }

void demote_deltas_now(void) {
    demote_where(pick_all, NULL);
    forget();
}

const DeltaShape *remember_delta_shape(const DeltaShape *shape) {
    if (shape_context == NULL)
        shape_context = AllocSetContextCreate(TopMemoryContext, "memoria delta shapes", ALLOCSET_SMALL_SIZES);
    ListCell *lc;
    foreach (lc, shapes) {
        DeltaShape *known = (DeltaShape *) lfirst(lc);
        if (known->log != shape->log) continue;
        if (memcmp(known, shape, sizeof *shape) != 0) {
            // Pending groups were keyed and sized for the old shape.
            demote_where(pick_log, &known->log);
            *known = *shape;
        }
        return known;
    }
    MemoryContext old = MemoryContextSwitchTo(shape_context);
    DeltaShape *copy = (DeltaShape *) palloc(sizeof(DeltaShape));
    *copy = *shape;
    shapes = lappend(shapes, copy);
    MemoryContextSwitchTo(old);
    return copy;
}

// copy_value: a detoasted copy of a by-reference value, in delta_context.
static Datum copy_value(Datum v, int16 typlen, bool typbyval) {
    if (typbyval) return v;
    MemoryContext old = MemoryContextSwitchTo(delta_context);
    Datum copy = typlen == -1 ? PointerGetDatum(pg_detoast_datum_copy((struct varlena *) DatumGetPointer(v)))
                              : datumCopy(v, false, typlen);
    MemoryContextSwitchTo(old);
    return copy;
}

static void replace_value(DeltaGroup *g, int i, Datum v) {
    const DeltaShape *s = g->shape;
    if (!g->nulls[i] && !s->arg_typbyval[i]) pfree(DatumGetPointer(g->vals[i]));
    g->vals[i] = copy_value(v, s->arg_typlen[i], s->arg_typbyval[i]);
    g->nulls[i] = false;
}

// fold: one row's inputs into the group's partials; false on overflow.
static bool fold(DeltaGroup *g, const Datum *values, const bool *skip) {
    const DeltaShape *s = g->shape;
    for (int i = 0; i < s->nmeasures; i++) {
        if (skip[i]) continue;
        Datum v = values[i];
        switch (s->kind[i]) {
            case MergeKind::CountStar:
            case MergeKind::Count:
                g->vals[i] = Int64GetDatum(DatumGetInt64(g->vals[i]) + 1);
                break;
            case MergeKind::SumInt:
            case MergeKind::SumInt8: {
                int64 add = s->arg_typlen[i] == 2 ? DatumGetInt16(v) : s->arg_typlen[i] == 4 ? DatumGetInt32(v)
                                                                                            : DatumGetInt64(v);
                int64 sum;
                if (g->nulls[i]) {
                    sum = add;
                } else if (pg_add_s64_overflow(DatumGetInt64(g->vals[i]), add, &sum)) {
                    return false;
                }
                g->vals[i] = Int64GetDatum(sum);
                g->nulls[i] = false;
                break;
            }
            case MergeKind::SumNumeric:
                // (The sum is made in the caller's per-row memory, then copied.)
                replace_value(g, i, g->nulls[i] ? v : DirectFunctionCall2(numeric_add, g->vals[i], v));
                break;
            case MergeKind::Min:
            case MergeKind::Max: {
                if (!g->nulls[i]) {
                    int c = DatumGetInt32(FunctionCall2Coll(s->cmp[i], InvalidOid, v, g->vals[i]));
                    if (s->kind[i] == MergeKind::Min ? c >= 0 : c <= 0) break;
                }
                replace_value(g, i, v);
                break;
            }
        }
    }
    return true;
}

static void write_deltas(void);

void delta_add(const DeltaShape *shape, const char *key, int len, const Datum *values, const bool *skip) {
    if (groups == NULL) {
        delta_context = AllocSetContextCreate(TopTransactionContext, "memoria deltas", ALLOCSET_DEFAULT_SIZES);
        capacity = 256;
        groups = new_table(capacity);
    }
    uint32 hash = hash_bytes((const unsigned char *) key, len);
    DeltaSlot *slot = find_group(groups, capacity, hash, key, (uint32) len);
    DeltaGroup *g = slot->group;
    bool created = g == NULL;
    if (created) {
        // One allocation: the group, its partials, its key.
        int n = shape->nmeasures;
        char *mem = carve(MAXALIGN(sizeof(DeltaGroup)) + MAXALIGN(n * sizeof(Datum)) + n + len);
        g = (DeltaGroup *) mem;
        g->vals = (Datum *) (mem + MAXALIGN(sizeof(DeltaGroup)));
        g->nulls = (bool *) ((char *) g->vals + MAXALIGN(n * sizeof(Datum)));
        g->bytes = (char *) g->nulls + n;
        g->hash = hash;
        g->len = (uint32) len;
        g->shape = shape;
        memcpy(g->bytes, key, len);
        for (int i = 0; i < shape->nmeasures; i++)
            g->nulls[i] = shape->kind[i] != MergeKind::CountStar && shape->kind[i] != MergeKind::Count;
        slot->hash = hash;
        slot->group = g;
        if (++count > capacity / 4 * 3) grow();
    }
    int level = GetCurrentTransactionNestLevel();
    g->level = Max(g->level, level);
    max_level = Max(max_level, level);
    if (!g->poisoned && !fold(g, values, skip)) {
        g->poisoned = true;
        poisoned++;
    }
    if (created && (count & 255) == 0 && MemoryContextMemAllocated(delta_context, true) > MAX_DELTA_BYTES) {
        flush_deltas();
        dirty_set_flush_if_due();  // (the groups made dirty keys, in a subtransaction)
    }
}

// shape_fits: whether the log has the columns the shape writes.
static bool shape_fits(Relation rel, const DeltaShape *s) {
    TupleDesc desc = RelationGetDescr(rel);
    if (desc->natts != 1 + s->ndims + s->nmeasures) return false;
    for (int a = 0; a < desc->natts; a++) {
        Form_pg_attribute att = TupleDescAttr(desc, a);
        Oid want = a == 0 ? s->time_type : a <= s->ndims ? s->dim_type[a - 1] : s->partial_type[a - 1 - s->ndims];
        if (att->attisdropped || att->atttypid != want) return false;
    }
    return true;
}

// partial_datum: a group's partial as the log's column holds it.
static Datum partial_datum(const DeltaGroup *g, int i) {
    return g->shape->kind[i] == MergeKind::SumInt8 ? NumericGetDatum(int64_to_numeric(DatumGetInt64(g->vals[i])))
                                                   : g->vals[i];
}

// write_log: the groups of one delta log, 256 rows per heap_multi_insert;
// false (nothing written) if the log is gone or has another shape.
static bool write_log(Oid log, const DeltaShape *shape) {
    // A log dropped under a cached shape (alter_rollup renewed it): its
    // partials go to the dirty log as keys.
    Relation rel = try_table_open(log, RowExclusiveLock);
    if (rel == NULL) return false;
    if (!shape_fits(rel, shape)) {
        table_close(rel, RowExclusiveLock);
        return false;
    }
    check_log_pristine(rel);
    const int BATCH = 256;
    TupleDesc desc = CreateTupleDescCopy(RelationGetDescr(rel));
    MemoryContext batch = AllocSetContextCreate(CurrentMemoryContext, "memoria delta batch", ALLOCSET_DEFAULT_SIZES);
    TupleTableSlot **slots = (TupleTableSlot **) palloc0(BATCH * sizeof(TupleTableSlot *));
    int made = 0, n = 0;
    CommandId cid = GetCurrentCommandId(true);
    BulkInsertState bistate = count > (uint32) BATCH ? GetBulkInsertState() : NULL;
    for (uint32 i = 0; i < capacity; i++) {
        DeltaGroup *g = groups[i].group;
        if (g == NULL || g->poisoned || g->shape->log != log) continue;
        if (n == made) slots[made++] = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
        TupleTableSlot *slot = slots[n];
        ExecClearTuple(slot);
        MemoryContext old = MemoryContextSwitchTo(batch);
        decode_group(g, slot->tts_values, slot->tts_isnull);
        for (int m = 0; m < shape->nmeasures; m++) {
            slot->tts_isnull[1 + shape->ndims + m] = g->nulls[m];
            slot->tts_values[1 + shape->ndims + m] = g->nulls[m] ? (Datum) 0 : partial_datum(g, m);
        }
        ExecStoreVirtualTuple(slot);
        MemoryContextSwitchTo(old);
        if (++n == BATCH) {
            heap_multi_insert(rel, slots, n, cid, 0, bistate);
            MemoryContextReset(batch);
            n = 0;
        }
    }
    if (n > 0) heap_multi_insert(rel, slots, n, cid, 0, bistate);
    if (bistate != NULL) FreeBulkInsertState(bistate);
    for (int i = 0; i < made; i++) ExecDropSingleTupleTableSlot(slots[i]);
    MemoryContextDelete(batch);
    table_close(rel, NoLock);
    return true;
}

static bool pick_poisoned(const DeltaGroup *g, const void *) { return g->poisoned; }

// write_deltas: every group to its log (poisoned ones, and those of a log
// that cannot take them, as dirty keys); then forget them all.
static void write_deltas(void) {
    if (poisoned > 0) demote_where(pick_poisoned, NULL);
    List *logs = NIL;
    List *shapes_of = NIL;
    for (uint32 i = 0; i < capacity; i++)
        if (groups[i].group != NULL && !list_member_oid(logs, groups[i].group->shape->log)) {
            logs = lappend_oid(logs, groups[i].group->shape->log);
            shapes_of = lappend(shapes_of, (void *) groups[i].group->shape);
        }
    ListCell *lc, *sc;
    forboth (lc, logs, sc, shapes_of) {
        Oid log = lfirst_oid(lc);
        if (!write_log(log, (const DeltaShape *) lfirst(sc))) demote_where(pick_log, &log);
    }
    forget();
}

void flush_deltas(void) {
    if (groups == NULL || count == 0 || flushing) return;
    flushing = true;
    PG_TRY();
    {
        if (GetCurrentTransactionNestLevel() == 1) {
            write_deltas();
        } else {
            demote_where(pick_all, NULL);
            forget();
        }
    }
    PG_FINALLY();
    {
        flushing = false;
    }
    PG_END_TRY();
}

// A subtransaction at `level` ended: what it folded in is gone (abort:
// those groups are poisoned) or now its parent's (commit).
static void delta_subxact_callback(SubXactEvent event, SubTransactionId my, SubTransactionId parent, void *arg) {
    if (groups == NULL || (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)) return;
    int level = GetCurrentTransactionNestLevel();
    if (level > max_level) return;
    for (uint32 i = 0; i < capacity; i++) {
        DeltaGroup *g = groups[i].group;
        if (g == NULL || g->level < level) continue;
        if (event == SUBXACT_EVENT_ABORT_SUB && !g->poisoned) {
            g->poisoned = true;
            poisoned++;
        }
        g->level = level - 1;
    }
    max_level = level - 1;
}

static void delta_xact_callback(XactEvent event, void *arg) {
    switch (event) {
        case XACT_EVENT_PRE_COMMIT:
        case XACT_EVENT_PARALLEL_PRE_COMMIT:
        case XACT_EVENT_PRE_PREPARE:
            break;  // (dirty_set.cpp's flush writes them)
        default:
            reset_state();  // gone with TopTransactionContext
            flushing = false;
            break;
    }
}

void init_delta_set(void) {
    RegisterXactCallback(delta_xact_callback, NULL);
    RegisterSubXactCallback(delta_subxact_callback, NULL);
}

}  // namespace memoria

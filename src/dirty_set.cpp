// dirty_set.cpp: the per-transaction set of dirty keys and its flush to the
// dirty logs (dirty_set.hpp).
//
// A *dirty key* is (rollup's dirty log, bucket, scope values): the rollup rows
// of that bucket and scope must be recomputed.  Each capture trigger
// (triggers.cpp: a row trigger after each row is written, a statement trigger
// over a plain table's inserted rows) computes the old and/or new row's key
// and adds it to a hash set kept in a memory context under
// TopTransactionContext.  The set is written to the
// dirty logs just before the transaction commits or prepares, and early
// whenever FLUSH_AT_KEYS new keys have gathered.  Keys written at the top level
// stay in the set, marked written, so that later rows with the same key cost
// a hash lookup and no log row: a transaction writes each distinct key once,
// however many rows it touches.  Memory stays bounded: past MAX_SET_BYTES the
// written keys are forgotten (a key seen again then costs one more log row).
// Writers therefore only ever append a few rows to an unindexed log: they
// never wait on each other or on a refresh.  A TRUNCATE adds a key with a
// NULL bucket, which refresh treats as "rebuild everything".
//
// A refresh in this backend may consume this transaction's log rows, so it
// first calls flush_pending_keys(), which forgets the keys written at the top
// level: the next change of such a key writes a new row.
//
// Keys from a rolled-back subtransaction stay in the set: recomputing a key
// that did not change is harmless, forgetting one that did is not.  A key
// written to a log inside a subtransaction remembers that level: if the
// subtransaction rolls back, its log row goes too, so the key is marked
// unwritten again; if it commits, the parent level owns the row.  A change of
// a key whose row was written in a subtransaction gets a row of its own (a
// refresh in the subtransaction may have consumed the first).
#include "delta_set.hpp"
#include "dirty_log.hpp"
#include "dirty_set.hpp"
#include "guard.hpp"

namespace memoria {

static const long FLUSH_AT_KEYS = 16384;              // new keys between early flushes
static const Size MAX_SET_BYTES = 32 * 1024 * 1024;   // beyond: forget written keys

// One slot of the dirty-key set, a cache line: an open-addressing table
// whose slots hold short keys inline, so that a lookup usually touches one
// line of memory (a chained hash table costs several cache misses per row).
struct DirtySlot {
    uint32 hash;
    uint32 len;         // 0: empty slot
    int written_level;  // the subtransaction level whose log row holds the key; 0: not written
    union {
        char inline_bytes[48];
        char *bytes;    // keys longer than inline_bytes, in dirty_context
    };
};
static_assert(sizeof(DirtySlot) == 64, "a slot is one cache line");

static const char *slot_bytes(const DirtySlot *s) {
    return s->len <= sizeof s->inline_bytes ? s->inline_bytes : s->bytes;
}

// The set: a power-of-two array with linear probing, at most 3/4 full.
struct DirtySet {
    DirtySlot *slots;
    uint32 capacity;
    uint32 count;
};

static MemoryContext dirty_set_context = NULL;  // backend lifetime: spare slots, log shapes
static MemoryContext dirty_context = NULL;     // child of TopTransactionContext
static DirtySet *dirty_keys = NULL;
static int max_written_level = 0;             // highest written_level in the set
static long new_since_flush = 0;              // keys added since the last flush

static void flush_dirty_keys(bool forget);

static void ensure_context(void) {
    if (dirty_set_context == NULL)
        dirty_set_context = AllocSetContextCreate(TopMemoryContext, "memoria dirty set", ALLOCSET_SMALL_SIZES);
}

// ---------------------------------------------------------------------------
// The key format.
// ---------------------------------------------------------------------------

Datum key_read_value(const char **p, int16 typlen, bool typbyval) {
    if (typbyval) {
        Datum d;
        memcpy(&d, *p, sizeof d);
        *p += sizeof d;
        return d;
    }
    Size len = typlen > 0 ? (Size) typlen : typlen == -1 ? VARSIZE_ANY(*p) : strlen(*p) + 1;
    char *copy = (char *) palloc(len);
    memcpy(copy, *p, len);
    *p += len;
    return PointerGetDatum(copy);
}

// ---------------------------------------------------------------------------
// Dirty logs' shapes.
// ---------------------------------------------------------------------------

// The column types of each dirty log, as capture serialized its keys
// (backend lifetime: keys are flushed after capture's cache may have been
// invalidated).  write_keys_to_log() refuses a log that differs.
static List *log_shapes = NIL;  // of LogShape *, in dirty_set_context

static const LogShape *find_log_shape(Oid log) {
    ListCell *lc;
    foreach (lc, log_shapes)
        if (((LogShape *) lfirst(lc))->log == log) return (const LogShape *) lfirst(lc);
    return NULL;
}

// check_log_shape: ERROR unless the log relation has exactly these columns.
void check_log_shape(Relation log, const LogShape *shape) {
    TupleDesc desc = RelationGetDescr(log);
    bool ok = log->rd_rel->relkind == RELKIND_RELATION && desc->natts == shape->natts && !log->rd_rel->relhasrules;
    for (int a = 0; ok && a < desc->natts; a++) {
        Form_pg_attribute att = TupleDescAttr(desc, a);
        ok = !att->attisdropped && att->atttypid == shape->types[a];
    }
    if (!ok)
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                        errmsg("memoria dirty log \"%s\" does not have the columns of its rollup's keys",
                               RelationGetRelationName(log)),
                        errhint("Drop the rollup with memoria.drop_rollup() and create it again.")));
}

void remember_log_shape(const LogShape *shape) {
    ensure_context();
    LogShape *known = (LogShape *) find_log_shape(shape->log);
    if (known == NULL) {
        MemoryContext old = MemoryContextSwitchTo(dirty_set_context);
        known = (LogShape *) palloc(sizeof(LogShape));
        log_shapes = lappend(log_shapes, known);
        MemoryContextSwitchTo(old);
    }
    *known = *shape;
}

// ---------------------------------------------------------------------------
// The set.
// ---------------------------------------------------------------------------

// Slot arrays of up to SPARE_SLOTS slots reuse one backend-lifetime array:
// a fresh array per transaction costs page faults (memory returned to the
// system at the previous commit), a large part of a small statement's cost.
static const uint32 SPARE_SLOTS = 4096;
static DirtySlot *spare_slots = NULL;
static bool spare_in_use = false;

// new_slots: an empty array of `capacity` slots.
static DirtySlot *new_slots(uint32 capacity) {
    DirtySlot *slots;
    if (capacity <= SPARE_SLOTS && !spare_in_use) {
        if (spare_slots == NULL)
            spare_slots = (DirtySlot *) MemoryContextAlloc(dirty_set_context, SPARE_SLOTS * sizeof(DirtySlot));
        slots = spare_slots;
        spare_in_use = true;
    } else {
        slots = (DirtySlot *) MemoryContextAllocHuge(dirty_context, (Size) capacity * sizeof(DirtySlot));
    }
    memset(slots, 0, (Size) capacity * sizeof(DirtySlot));
    return slots;
}

static void free_slots(DirtySlot *slots) {
    if (slots == spare_slots) spare_in_use = false;
    else pfree(slots);
}

static void ensure_dirty_set(void) {
    if (dirty_keys != NULL) return;
    ensure_context();
    dirty_context = AllocSetContextCreate(TopTransactionContext, "memoria dirty keys", ALLOCSET_DEFAULT_SIZES);
    dirty_keys = (DirtySet *) MemoryContextAlloc(dirty_context, sizeof(DirtySet));
    dirty_keys->capacity = 64;
    dirty_keys->count = 0;
    dirty_keys->slots = new_slots(dirty_keys->capacity);
}

// find_slot: the slot holding the key, or the empty slot where it belongs.
static DirtySlot *find_slot(DirtySlot *slots, uint32 capacity, uint32 hash, const char *bytes, uint32 len) {
    uint32 mask = capacity - 1;
    for (uint32 i = hash & mask;; i = (i + 1) & mask) {
        DirtySlot *s = &slots[i];
        if (s->len == 0 || (s->hash == hash && s->len == len && memcmp(slot_bytes(s), bytes, len) == 0))
            return s;
    }
}

// rebuild_set: move the slots that `keep` accepts into a table of `capacity`
// slots (growing, or dropping forgotten keys).  Long keys keep their bytes.
static void rebuild_set(uint32 capacity, bool (*keep)(const DirtySlot *)) {
    MEMORIA_ASSERT((capacity & (capacity - 1)) == 0 && capacity >= dirty_keys->count);
    DirtySlot *old = dirty_keys->slots;
    uint32 old_capacity = dirty_keys->capacity;
    DirtySlot *slots = new_slots(capacity);  // never the old array: that is in use
    uint32 count = 0;
    for (uint32 i = 0; i < old_capacity; i++) {
        if (old[i].len == 0) continue;
        if (!keep(&old[i])) {
            if (old[i].len > sizeof old[i].inline_bytes) pfree(old[i].bytes);
            continue;
        }
        *find_slot(slots, capacity, old[i].hash, slot_bytes(&old[i]), old[i].len) = old[i];
        count++;
    }
    free_slots(old);
    dirty_keys->slots = slots;
    dirty_keys->capacity = capacity;
    dirty_keys->count = count;
}

static bool keep_all(const DirtySlot *) { return true; }
static bool keep_unless_top_level(const DirtySlot *s) { return s->written_level != 1; }

void dirty_set_add(const char *bytes, int len, bool may_flush) {
    ensure_dirty_set();
    MEMORIA_ASSERT(len > (int) sizeof(Oid) && dirty_keys->count <= dirty_keys->capacity / 4 * 3);
    uint32 hash = hash_bytes((const unsigned char *) bytes, len);
    DirtySlot *s = find_slot(dirty_keys->slots, dirty_keys->capacity, hash, bytes, (uint32) len);
    if (s->len != 0) {
        // Pending, or held by a log row of the top level: nothing to do.
        // Written in a subtransaction: this change needs a row of its own.
        if (s->written_level > 1) s->written_level = 0;
        return;
    }
    s->hash = hash;
    s->len = (uint32) len;
    s->written_level = 0;
    if (s->len <= sizeof s->inline_bytes) {
        memcpy(s->inline_bytes, bytes, len);
    } else {
        s->bytes = (char *) MemoryContextAlloc(dirty_context, len);
        memcpy(s->bytes, bytes, len);
    }
    if (++dirty_keys->count > dirty_keys->capacity / 4 * 3) rebuild_set(dirty_keys->capacity * 2, keep_all);
    if (++new_since_flush >= FLUSH_AT_KEYS && may_flush) flush_dirty_keys(false);
}

// decode_key: a serialized key's log row, into values/isnull (natts columns
// of desc; values in CurrentMemoryContext).
static void decode_key(const char *bytes, TupleDesc desc, Datum *values, bool *isnull) {
    int natts = desc->natts;
    const char *flags = bytes + sizeof(Oid);
    const char *p = flags + natts;
    for (int a = 0; a < natts; a++) {
        isnull[a] = flags[a] != 0;
        values[a] = (Datum) 0;
        if (isnull[a]) continue;
        if (a == 0) {
            int64 b;
            memcpy(&b, p, sizeof b);
            p += sizeof b;
            values[0] = TupleDescAttr(desc, 0)->atttypid == DATEOID ? DateADTGetDatum((DateADT) b) : Int64GetDatum(b);
        } else {
            values[a] = key_read_value(&p, TupleDescAttr(desc, a)->attlen, TupleDescAttr(desc, a)->attbyval);
        }
    }
}

int unwritten_keys(Oid dirty_log, TupleDesc desc, Datum **values, bool **isnull) {
    *values = NULL;
    *isnull = NULL;
    if (dirty_keys == NULL) return 0;
    const LogShape *shape = find_log_shape(dirty_log);
    if (shape == NULL || shape->natts != desc->natts) return 0;
    int n = 0, natts = desc->natts;
    for (uint32 i = 0; i < dirty_keys->capacity; i++) {
        const DirtySlot *k = &dirty_keys->slots[i];
        Oid log;
        if (k->len == 0 || k->written_level != 0) continue;
        memcpy(&log, slot_bytes(k), sizeof log);
        if (log != dirty_log) continue;
        if (n == 0) {
            *values = (Datum *) palloc(dirty_keys->count * natts * sizeof(Datum));
            *isnull = (bool *) palloc(dirty_keys->count * natts * sizeof(bool));
        }
        decode_key(slot_bytes(k), desc, *values + n * natts, *isnull + n * natts);
        n++;
    }
    return n;
}

// write_keys_to_log: insert every unwritten key of the set that belongs to
// one dirty log, LOG_BATCH rows per heap_multi_insert (one WAL record per
// page instead of one per row).  Each batch's values and tuples live in
// batch_context, reset after the batch.
static void write_keys_to_log(Oid dirty_log, MemoryContext batch_context) {
    // The log is dropped only after the capture triggers, and dropping those
    // waits for this transaction; a missing log means the rollup is gone.
    Relation rel = try_table_open(dirty_log, RowExclusiveLock);
    if (rel == NULL) return;
    const LogShape *shape = find_log_shape(dirty_log);
    if (shape == NULL) elog(ERROR, "memoria: no key layout known for dirty log %u", dirty_log);
    check_log_shape(rel, shape);
    check_log_pristine(rel);  // heap_multi_insert maintains no index, fires no trigger
    const int LOG_BATCH = 256;
    // Slots over an unpinned copy of the descriptor: pinning the relation's
    // own costs a resource-owner entry per slot, forgotten in O(slots).
    TupleDesc desc = CreateTupleDescCopy(RelationGetDescr(rel));
    TupleTableSlot **slots = (TupleTableSlot **) palloc0(LOG_BATCH * sizeof(TupleTableSlot *));
    int made = 0, n = 0;
    // A bulk-write buffer ring pays off for many rows only; most flushes
    // write a handful (a small transaction's keys).
    BulkInsertState bistate = dirty_keys->count > LOG_BATCH ? GetBulkInsertState() : NULL;
    CommandId cid = GetCurrentCommandId(true);
    for (uint32 i = 0; i < dirty_keys->capacity; i++) {
        const DirtySlot *k = &dirty_keys->slots[i];
        if (k->len == 0 || k->written_level != 0) continue;
        const char *bytes = slot_bytes(k);
        Oid log;
        memcpy(&log, bytes, sizeof log);
        if (log != dirty_log) continue;
        if (n == made) slots[made++] = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
        TupleTableSlot *slot = slots[n];
        ExecClearTuple(slot);
        MemoryContext old = MemoryContextSwitchTo(batch_context);
        decode_key(bytes, desc, slot->tts_values, slot->tts_isnull);
        ExecStoreVirtualTuple(slot);
        if (++n == LOG_BATCH) {
            heap_multi_insert(rel, slots, n, cid, 0, bistate);
            MemoryContextReset(batch_context);
            n = 0;
        }
        MemoryContextSwitchTo(old);
    }
    if (n > 0) {
        MemoryContext old = MemoryContextSwitchTo(batch_context);
        heap_multi_insert(rel, slots, n, cid, 0, bistate);
        MemoryContextSwitchTo(old);
    }
    if (bistate != NULL) FreeBulkInsertState(bistate);
    for (int i = 0; i < made; i++) ExecDropSingleTupleTableSlot(slots[i]);
    table_close(rel, NoLock);
}

// forget_top_level_keys: drop the keys whose log rows belong to the top level
// (all of them at the top level: the whole set goes, with its memory).
static void forget_top_level_keys(void) {
    if (GetCurrentTransactionNestLevel() == 1) {
        MemoryContextDelete(dirty_context);
        dirty_context = NULL;
        dirty_keys = NULL;
        spare_in_use = false;
        max_written_level = 0;
        return;
    }
    rebuild_set(dirty_keys->capacity, keep_unless_top_level);
}

// flush_dirty_keys: write the unwritten keys of the set to the dirty logs and
// mark them with the level that wrote them; with forget (or past the memory
// bound), then drop the keys the top level holds (see the file comment).
static void flush_dirty_keys(bool forget) {
    // The additive path's partials first: those that cannot be written
    // become dirty keys, written below.
    flush_deltas();
    if (dirty_keys == NULL || dirty_keys->count == 0) return;
    int level = GetCurrentTransactionNestLevel();
    // Backend-lifetime contexts that keep their first block when reset: a
    // flush then reuses memory it already touched (fresh memory costs a page
    // fault per page, a large part of a small transaction's flush).
    static MemoryContext flush_context = NULL, batch_context = NULL;
    if (flush_context == NULL) {
        flush_context = AllocSetContextCreate(TopMemoryContext, "memoria flush", 64 * 1024, 64 * 1024,
                                              ALLOCSET_DEFAULT_MAXSIZE);
        batch_context = AllocSetContextCreate(TopMemoryContext, "memoria flush batch", 128 * 1024, 128 * 1024,
                                              ALLOCSET_DEFAULT_MAXSIZE);
    }
    MemoryContextReset(flush_context);  // what an interrupted flush left
    MemoryContextReset(batch_context);
    MemoryContext old = MemoryContextSwitchTo(flush_context);
    // The distinct dirty logs in the set (a handful: one per rollup written).
    List *logs = NIL;
    for (uint32 i = 0; i < dirty_keys->capacity; i++) {
        const DirtySlot *k = &dirty_keys->slots[i];
        if (k->len == 0 || k->written_level != 0) continue;
        Oid log;
        memcpy(&log, slot_bytes(k), sizeof log);
        logs = list_append_unique_oid(logs, log);
    }
    ListCell *lc;
    foreach (lc, logs) write_keys_to_log(lfirst_oid(lc), batch_context);
    MemoryContextSwitchTo(old);
    MemoryContextReset(flush_context);
    for (uint32 i = 0; i < dirty_keys->capacity; i++) {
        DirtySlot *k = &dirty_keys->slots[i];
        if (k->len != 0 && k->written_level == 0) k->written_level = level;
        MEMORIA_ASSERT(k->written_level <= level);
    }
    max_written_level = Max(max_written_level, level);
    new_since_flush = 0;
    if (forget || MemoryContextMemAllocated(dirty_context, true) > MAX_SET_BYTES) forget_top_level_keys();
}

// dirty_set_subxact_callback: a subtransaction at `level` ended; keys its log
// rows hold are unwritten again (abort) or now held by the parent (commit).
static void dirty_set_subxact_callback(SubXactEvent event, SubTransactionId my, SubTransactionId parent, void *arg) {
    if (dirty_keys == NULL || (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)) return;
    int level = GetCurrentTransactionNestLevel();
    if (level > max_written_level) return;
    for (uint32 i = 0; i < dirty_keys->capacity; i++) {
        DirtySlot *k = &dirty_keys->slots[i];
        if (k->len == 0 || k->written_level < level) continue;
        // A row held by a level deeper than the one ending would have been
        // handed up when that level ended.
        MEMORIA_ASSERT(k->written_level == level);
        k->written_level = event == SUBXACT_EVENT_ABORT_SUB ? 0 : level - 1;
    }
    max_written_level = level - 1;
}

static void dirty_set_xact_callback(XactEvent event, void *arg) {
    switch (event) {
        case XACT_EVENT_PRE_COMMIT:
        case XACT_EVENT_PARALLEL_PRE_COMMIT:
        case XACT_EVENT_PRE_PREPARE:
            flush_dirty_keys(false);
            break;
        default:
            // Commit, abort or prepare done: the set died with TopTransactionContext.
            dirty_keys = NULL;
            spare_in_use = false;
            dirty_context = NULL;
            max_written_level = 0;
            new_since_flush = 0;
            break;
    }
}

void dirty_set_flush_if_due(void) {
    if (new_since_flush >= FLUSH_AT_KEYS) flush_dirty_keys(false);
}

void flush_pending_keys(void) {
    flush_dirty_keys(true);
    // Make the rows just written visible to the caller's next statements.
    CommandCounterIncrement();
}

void init_dirty_set(void) {
    RegisterXactCallback(dirty_set_xact_callback, NULL);
    RegisterSubXactCallback(dirty_set_subxact_callback, NULL);
    init_delta_set();
}

}  // namespace memoria

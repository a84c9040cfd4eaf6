// capture.cpp: the capture trigger memoria.capture() and the per-transaction
// set of dirty keys.
//
// A *dirty key* is (rollup's dirty log, bucket, scope values): the rollup rows
// of that bucket and scope must be recomputed.  The trigger runs BEFORE each
// row is written (PostgreSQL clones it to every partition, present and
// future), computes the old and/or new row's key and adds it to a hash set kept
// in a memory context under TopTransactionContext.  The set is written to the
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
//
// Trigger arguments (written by create_rollup): rollup id, dirty log oid,
// source oid, time attnum, bucket width in microseconds, time zone, then the
// scope attnums.  Attribute numbers are the source's; for a partition they are
// mapped by column name, so partitions with other column orders work.
#include "bucket.hpp"
#include "capture.hpp"
#include "guard.hpp"

namespace memoria {

static const long FLUSH_AT_KEYS = 16384;              // new keys between early flushes
static const Size MAX_SET_BYTES = 32 * 1024 * 1024;   // beyond: forget written keys
static const int MAX_SCOPE = 32;

// What the trigger needs to know about one (trigger, relation): cached per backend.
struct CaptureTarget {
    Oid trigger_oid;  // hash key
    Oid relid;
    Oid dirty_log;
    AttrNumber time_attnum;
    BucketSpec spec;
    int nscope;
    AttrNumber scope_attnum[MAX_SCOPE];
    int16 scope_typlen[MAX_SCOPE];
    bool scope_typbyval[MAX_SCOPE];
};

// One key in the dirty set: points at its serialized bytes (see add_row_key).
struct DirtyKey {
    uint32 hash;
    uint32 len;
    char *bytes;
};

// A set entry: the key, and the subtransaction level whose log row holds it
// (0: not written yet).
struct DirtyEntry {
    DirtyKey key;
    int written_level;
};

static HTAB *capture_targets = NULL;           // backend lifetime
static MemoryContext capture_cache_context = NULL;
static MemoryContext dirty_context = NULL;     // child of TopTransactionContext
static HTAB *dirty_keys = NULL;
static int max_written_level = 0;             // highest written_level in the set
static long new_since_flush = 0;              // keys added since the last flush
static StringInfoData key_buf;                 // scratch, in capture_cache_context

static void flush_dirty_keys(bool forget);

// ---------------------------------------------------------------------------
// The per-backend cache of trigger targets.
// ---------------------------------------------------------------------------

static void invalidate_capture_targets(Datum arg, Oid relid) {
    if (capture_targets == NULL) return;
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, capture_targets);
    CaptureTarget *t;
    while ((t = (CaptureTarget *) hash_seq_search(&status)) != NULL)
        if (relid == InvalidOid || t->relid == relid)
            hash_search(capture_targets, &t->trigger_oid, HASH_REMOVE, NULL);
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
    MemoryContextSwitchTo(old);
}

static int32 int_arg(const Trigger *tg, int i) {
    return pg_strtoint32(tg->tgargs[i]);
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

static CaptureTarget *capture_target_for(TriggerData *td) {
    ensure_cache();
    const Trigger *tg = td->tg_trigger;
    bool found;
    CaptureTarget *t = (CaptureTarget *) hash_search(capture_targets, &tg->tgoid, HASH_FIND, &found);
    if (found) return t;
    if (tg->tgnargs < CAPTURE_FIXED_ARGS || tg->tgnargs - CAPTURE_FIXED_ARGS > MAX_SCOPE)
        elog(ERROR, "memoria.capture(): trigger \"%s\" has malformed arguments", tg->tgname);
    // Compute everything first so that an ERROR leaves no half-built entry.
    CaptureTarget tmp;
    memset(&tmp, 0, sizeof tmp);
    Relation rel = td->tg_relation;
    TupleDesc desc = RelationGetDescr(rel);
    Oid source = (Oid) strtoul(tg->tgargs[2], NULL, 10);
    tmp.trigger_oid = tg->tgoid;
    tmp.relid = RelationGetRelid(rel);
    tmp.dirty_log = (Oid) strtoul(tg->tgargs[1], NULL, 10);
    tmp.time_attnum = map_attnum(source, rel, (AttrNumber) int_arg(tg, 3));
    TimeKind kind;
    if (!time_kind_of(TupleDescAttr(desc, tmp.time_attnum - 1)->atttypid, &kind))
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("time column of \"%s\" no longer has a supported type",
                               RelationGetRelationName(rel)),
                        errhint("Drop the rollup with memoria.drop_rollup() and create it again.")));
    int64 width = pg_strtoint64(tg->tgargs[4]);
    pg_tz *tz = kind == TimeKind::Timestamptz ? lookup_time_zone(tg->tgargs[5]) : NULL;
    bucket_spec_init(&tmp.spec, kind, width, tz);
    tmp.nscope = tg->tgnargs - CAPTURE_FIXED_ARGS;
    for (int i = 0; i < tmp.nscope; i++) {
        AttrNumber a = map_attnum(source, rel, (AttrNumber) int_arg(tg, CAPTURE_FIXED_ARGS + i));
        Form_pg_attribute att = TupleDescAttr(desc, a - 1);
        tmp.scope_attnum[i] = a;
        tmp.scope_typlen[i] = att->attlen;
        tmp.scope_typbyval[i] = att->attbyval;
    }
    t = (CaptureTarget *) hash_search(capture_targets, &tg->tgoid, HASH_ENTER, &found);
    *t = tmp;
    return t;
}

// ---------------------------------------------------------------------------
// The dirty-key set.
//
// Serialized key: dirty log oid, a null flag per column (bucket first), the
// bucket as 8 bytes, then each non-null scope value: by-value types as a
// Datum, fixed-length types as their bytes, varlena as the whole (detoasted)
// value, cstring with its terminator.  Binary equality is a sound dedup test:
// two equal values with different bytes just give two log rows.
// ---------------------------------------------------------------------------

static uint32 dirty_key_hash(const void *key, Size keysize) {
    return ((const DirtyKey *) key)->hash;
}

static int dirty_key_match(const void *a, const void *b, Size keysize) {
    const DirtyKey *x = (const DirtyKey *) a, *y = (const DirtyKey *) b;
    return (x->hash == y->hash && x->len == y->len && memcmp(x->bytes, y->bytes, x->len) == 0) ? 0 : 1;
}

static void ensure_dirty_set(void) {
    if (dirty_keys != NULL) return;
    dirty_context = AllocSetContextCreate(TopTransactionContext, "memoria dirty keys", ALLOCSET_DEFAULT_SIZES);
    HASHCTL ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.keysize = sizeof(DirtyKey);
    ctl.entrysize = sizeof(DirtyEntry);
    ctl.hash = dirty_key_hash;
    ctl.match = dirty_key_match;
    ctl.hcxt = dirty_context;
    dirty_keys = hash_create("memoria dirty keys", 1024, &ctl,
                             HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

static void append_datum(StringInfo buf, Datum value, int16 typlen, bool typbyval) {
    if (typbyval) {
        appendBinaryStringInfo(buf, (const char *) &value, sizeof(Datum));
    } else if (typlen > 0) {
        appendBinaryStringInfo(buf, DatumGetPointer(value), typlen);
    } else if (typlen == -1) {
        struct varlena *v = (struct varlena *) DatumGetPointer(value);
        if (VARATT_IS_EXTENDED(v)) v = pg_detoast_datum_packed(v);
        appendBinaryStringInfo(buf, (const char *) v, VARSIZE_ANY(v));
    } else {
        const char *s = DatumGetCString(value);
        appendBinaryStringInfo(buf, s, strlen(s) + 1);
    }
}

static void add_key_bytes(const char *bytes, int len) {
    ensure_dirty_set();
    DirtyKey probe = {hash_bytes((const unsigned char *) bytes, len), (uint32) len, (char *) bytes};
    bool found;
    DirtyEntry *e = (DirtyEntry *) hash_search(dirty_keys, &probe, HASH_FIND, &found);
    if (found) {
        // Pending, or held by a log row of the top level: nothing to do.
        // Written in a subtransaction: this change needs a row of its own.
        if (e->written_level > 1) e->written_level = 0;
        return;
    }
    probe.bytes = (char *) MemoryContextAlloc(dirty_context, len);
    memcpy(probe.bytes, bytes, len);
    e = (DirtyEntry *) hash_search(dirty_keys, &probe, HASH_ENTER, &found);
    e->written_level = 0;
    if (++new_since_flush >= FLUSH_AT_KEYS) flush_dirty_keys(false);
}

// build_row_key: the serialized key of one source row, in key_buf; false
// for a row with a NULL time, which is not rolled up and so dirties nothing.
static bool build_row_key(CaptureTarget *t, HeapTuple tuple, TupleDesc desc) {
    bool isnull;
    Datum time = heap_getattr(tuple, t->time_attnum, desc, &isnull);
    if (isnull) return false;
    Datum bucket = bucket_of(&t->spec, time);
    StringInfo buf = &key_buf;
    resetStringInfo(buf);
    appendBinaryStringInfo(buf, (const char *) &t->dirty_log, sizeof(Oid));
    int nullpos = buf->len;
    appendStringInfoSpaces(buf, 1 + t->nscope);  // null flags, filled below
    buf->data[nullpos] = 0;
    int64 b = t->spec.kind == TimeKind::Date ? (int64) DatumGetDateADT(bucket) : DatumGetInt64(bucket);
    appendBinaryStringInfo(buf, (const char *) &b, sizeof b);
    for (int i = 0; i < t->nscope; i++) {
        Datum v = heap_getattr(tuple, t->scope_attnum[i], desc, &isnull);
        buf->data[nullpos + 1 + i] = isnull ? 1 : 0;
        if (!isnull) append_datum(buf, v, t->scope_typlen[i], t->scope_typbyval[i]);
    }
    return true;
}

static void add_row_key(CaptureTarget *t, HeapTuple tuple, TupleDesc desc) {
    if (build_row_key(t, tuple, desc)) add_key_bytes(key_buf.data, key_buf.len);
}

// add_moved_row_keys: updated_at mode's UPDATE.  The scan finds the new row
// through its updated_at; only a row that moved to another key must also
// dirty the key it left (and, in case updated_at was not bumped, the new one).
static void add_moved_row_keys(CaptureTarget *t, HeapTuple old_row, HeapTuple new_row, TupleDesc desc) {
    bool had_old = build_row_key(t, old_row, desc);
    int old_len = had_old ? key_buf.len : 0;
    char *old_key = (char *) palloc(old_len + 1);
    if (had_old) memcpy(old_key, key_buf.data, old_len);
    bool has_new = build_row_key(t, new_row, desc);
    bool same = had_old && has_new && old_len == key_buf.len && memcmp(old_key, key_buf.data, old_len) == 0;
    if (!same && has_new) add_key_bytes(key_buf.data, key_buf.len);
    if (!same && had_old) add_key_bytes(old_key, old_len);
    pfree(old_key);
}

// add_rebuild_key: TRUNCATE; a key whose bucket and scope are all NULL.
static void add_rebuild_key(CaptureTarget *t) {
    StringInfo buf = &key_buf;
    resetStringInfo(buf);
    appendBinaryStringInfo(buf, (const char *) &t->dirty_log, sizeof(Oid));
    for (int i = 0; i <= t->nscope; i++) appendStringInfoChar(buf, 1);
    add_key_bytes(buf->data, buf->len);
}

// read_datum: the inverse of append_datum; copies into aligned memory.
static Datum read_datum(const char **p, Form_pg_attribute att) {
    if (att->attbyval) {
        Datum d;
        memcpy(&d, *p, sizeof d);
        *p += sizeof d;
        return d;
    }
    Size len = att->attlen > 0 ? (Size) att->attlen
               : att->attlen == -1 ? VARSIZE_ANY(*p) : strlen(*p) + 1;
    char *copy = (char *) palloc(len);
    memcpy(copy, *p, len);
    *p += len;
    return PointerGetDatum(copy);
}

// write_keys_to_log: insert every unwritten key of the set that belongs to
// one dirty log, LOG_BATCH rows per heap_multi_insert (one WAL record per
// page instead of one per row).
static void write_keys_to_log(Oid dirty_log) {
    // The log is dropped only after the capture triggers, and dropping those
    // waits for this transaction; a missing log means the rollup is gone.
    Relation rel = try_table_open(dirty_log, RowExclusiveLock);
    if (rel == NULL) return;
    const int LOG_BATCH = 1000;
    TupleDesc desc = RelationGetDescr(rel);
    int natts = desc->natts;
    TupleTableSlot **slots = (TupleTableSlot **) palloc0(LOG_BATCH * sizeof(TupleTableSlot *));
    int made = 0, n = 0;
    BulkInsertState bistate = GetBulkInsertState();
    CommandId cid = GetCurrentCommandId(true);
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, dirty_keys);
    DirtyEntry *e;
    while ((e = (DirtyEntry *) hash_seq_search(&status)) != NULL) {
        DirtyKey *k = &e->key;
        Oid log;
        memcpy(&log, k->bytes, sizeof log);
        if (log != dirty_log || e->written_level != 0) continue;
        if (n == made) slots[made++] = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
        TupleTableSlot *slot = slots[n];
        ExecClearTuple(slot);
        const char *flags = k->bytes + sizeof(Oid);
        const char *p = flags + natts;
        for (int i = 0; i < natts; i++) {
            slot->tts_isnull[i] = flags[i] != 0;
            slot->tts_values[i] = (Datum) 0;
            if (slot->tts_isnull[i]) continue;
            if (i == 0) {
                int64 b;
                memcpy(&b, p, sizeof b);
                p += sizeof b;
                slot->tts_values[0] = TupleDescAttr(desc, 0)->atttypid == DATEOID ? DateADTGetDatum((DateADT) b)
                                                                                   : Int64GetDatum(b);
            } else {
                slot->tts_values[i] = read_datum(&p, TupleDescAttr(desc, i));
            }
        }
        ExecStoreVirtualTuple(slot);
        if (++n == LOG_BATCH) {
            heap_multi_insert(rel, slots, n, cid, 0, bistate);
            n = 0;
        }
    }
    if (n > 0) heap_multi_insert(rel, slots, n, cid, 0, bistate);
    FreeBulkInsertState(bistate);
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
        max_written_level = 0;
        return;
    }
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, dirty_keys);
    DirtyEntry *e;
    while ((e = (DirtyEntry *) hash_seq_search(&status)) != NULL)
        if (e->written_level == 1) hash_search(dirty_keys, &e->key, HASH_REMOVE, NULL);
}

// flush_dirty_keys: write the unwritten keys of the set to the dirty logs and
// mark them with the level that wrote them; with forget (or past the memory
// bound), then drop the keys the top level holds (see the file comment).
static void flush_dirty_keys(bool forget) {
    if (dirty_keys == NULL || hash_get_num_entries(dirty_keys) == 0) return;
    int level = GetCurrentTransactionNestLevel();
    MemoryContext flush_context = AllocSetContextCreate(CurrentMemoryContext, "memoria flush",
                                                        ALLOCSET_DEFAULT_SIZES);
    MemoryContext old = MemoryContextSwitchTo(flush_context);
    // The distinct dirty logs in the set (a handful: one per rollup written).
    List *logs = NIL;
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, dirty_keys);
    DirtyEntry *e;
    while ((e = (DirtyEntry *) hash_seq_search(&status)) != NULL) {
        Oid log;
        memcpy(&log, e->key.bytes, sizeof log);
        if (e->written_level == 0) logs = list_append_unique_oid(logs, log);
    }
    ListCell *lc;
    foreach (lc, logs) write_keys_to_log(lfirst_oid(lc));
    MemoryContextSwitchTo(old);
    MemoryContextDelete(flush_context);
    hash_seq_init(&status, dirty_keys);
    while ((e = (DirtyEntry *) hash_seq_search(&status)) != NULL)
        if (e->written_level == 0) e->written_level = level;
    max_written_level = Max(max_written_level, level);
    new_since_flush = 0;
    if (forget || MemoryContextMemAllocated(dirty_context, true) > MAX_SET_BYTES) forget_top_level_keys();
}

// capture_subxact_callback: a subtransaction at `level` ended; keys its log
// rows hold are unwritten again (abort) or now held by the parent (commit).
static void capture_subxact_callback(SubXactEvent event, SubTransactionId my, SubTransactionId parent, void *arg) {
    if (dirty_keys == NULL || (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)) return;
    int level = GetCurrentTransactionNestLevel();
    if (level > max_written_level) return;
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, dirty_keys);
    DirtyEntry *e;
    while ((e = (DirtyEntry *) hash_seq_search(&status)) != NULL) {
        if (e->written_level < level) continue;
        e->written_level = event == SUBXACT_EVENT_ABORT_SUB ? 0 : level - 1;
    }
    max_written_level = level - 1;
}

static void capture_xact_callback(XactEvent event, void *arg) {
    switch (event) {
        case XACT_EVENT_PRE_COMMIT:
        case XACT_EVENT_PARALLEL_PRE_COMMIT:
        case XACT_EVENT_PRE_PREPARE:
            flush_dirty_keys(false);
            break;
        default:
            // Commit, abort or prepare done: the set died with TopTransactionContext.
            dirty_keys = NULL;
            dirty_context = NULL;
            max_written_level = 0;
            new_since_flush = 0;
            break;
    }
}

void flush_pending_keys(void) {
    flush_dirty_keys(true);
    // Make the rows just written visible to the caller's next statements.
    CommandCounterIncrement();
}

void init_capture(void) {
    RegisterXactCallback(capture_xact_callback, NULL);
    RegisterSubXactCallback(capture_subxact_callback, NULL);
    CacheRegisterRelcacheCallback(invalidate_capture_targets, (Datum) 0);
}

}  // namespace memoria

using namespace memoria;

// memoria.capture(): BEFORE ROW (INSERT, UPDATE, DELETE) and BEFORE TRUNCATE.
MEMORIA_FUNCTION(memoria_capture) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("memoria.capture() must be called as a trigger")));
    TriggerData *td = (TriggerData *) fcinfo->context;
    if (!TRIGGER_FIRED_BEFORE(td->tg_event))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("memoria.capture() must be a BEFORE trigger")));
    CaptureTarget *t = capture_target_for(td);
    TupleDesc desc = RelationGetDescr(td->tg_relation);
    if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event)) {
        add_rebuild_key(t);
        return PointerGetDatum(NULL);
    }
    if (!TRIGGER_FIRED_FOR_ROW(td->tg_event))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("memoria.capture() must be a row trigger for INSERT, UPDATE or DELETE")));
    if (TRIGGER_FIRED_BY_UPDATE(td->tg_event)) {
        // A capture trigger that skips INSERT belongs to an updated_at rollup.
        if (TRIGGER_FOR_INSERT(td->tg_trigger->tgtype)) {
            add_row_key(t, td->tg_trigtuple, desc);
            add_row_key(t, td->tg_newtuple, desc);
        } else {
            add_moved_row_keys(t, td->tg_trigtuple, td->tg_newtuple, desc);
        }
        return PointerGetDatum(td->tg_newtuple);
    }
    add_row_key(t, td->tg_trigtuple, desc);
    return PointerGetDatum(td->tg_trigtuple);
}

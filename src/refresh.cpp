// refresh.cpp: memoria.refresh() and memoria.refresh_window(): the
// orchestration; the statements are in statements.cpp, the catalog writes in
// catalog.cpp.
//
// A refresh of one rollup:
//   1. takes the rollup's advisory lock with try-lock (transaction scoped:
//      nothing outlives an error, a cancel or a dead backend); busy -> 'busy';
//   2. checks its capture is intact (triggers.cpp): the watermark must never
//      pass writes no trigger saw;
//   3. notes the watermark candidate T: the current time under READ COMMITTED
//      (each statement's snapshot is newer), the transaction start otherwise
//      (the transaction snapshot is no older) -- every change committed before
//      T is visible to the statements that follow;
//   4. in a subtransaction, in the rollup's session (session.hpp): claims the
//      dirty keys it sees (DELETE ... RETURNING: exactly those, later commits
//      stay), recomputes them from the source and replaces their rows; a
//      rebuild marker turns it into a full rebuild;
//   5. if it claimed every key it could see, moves the watermark up to T;
//   6. records the outcome in memoria.rollup_state.  A failure rolls back the
//      subtransaction only; the error is then recorded in the outer
//      transaction, so it survives, and the other rollups go on.
#include "citus.hpp"
#include "adopt.hpp"
#include "dirty_log.hpp"
#include "refresh.hpp"
#include "view_source.hpp"
#include "dirty_set.hpp"
#include "guard.hpp"
#include "horizon.hpp"
#include "statements.hpp"
#include "triggers.hpp"
#include "args.hpp"

extern "C" {
#include "storage/procarray.h"
}

namespace memoria {

// Outcome: what refresh() returns for one rollup.
struct Outcome {
    RefreshRecord record;  // status, error, started
    int64 keys, upserted, deleted;
    bool has_watermark;
    TimestampTz watermark;
    bool rebuilt;  // a rebuild ran (a replaced view's wait is over)
};

static TimestampTz watermark_candidate(void) {
    return IsolationUsesXactSnapshot() ? GetCurrentTransactionStartTimestamp() : GetCurrentTimestamp();
}

// finish: record the outcome (advancing the watermark to t with advance).
static void finish(const Rollup *r, Outcome *o, bool advance, TimestampTz t, bool backfilled) {
    o->record.advance = advance;
    o->record.candidate = t;
    o->record.backfilled = backfilled;
    o->has_watermark = record_refresh(r, &o->record, &o->watermark);
}

// Claimed: the log rows a refresh claimed (its log row, its bucket).
struct Claimed {
    HeapTuple *rows;
    uint64 n;
    TupleDesc desc;
};

// Time values as int64 (timestamps; days for dates) and back.
static int64 int_of(const Rollup *r, Datum d) {
    return r->kind == TimeKind::Date ? (int64) DatumGetDateADT(d) : DatumGetInt64(d);
}

static Datum datum_of(const Rollup *r, int64 v) {
    return r->kind == TimeKind::Date ? DateADTGetDatum((DateADT) v) : Int64GetDatum(v);
}

static Datum claimed_bucket(const Claimed &c, uint64 i) {
    bool isnull;
    return SPI_getbinval(c.rows[i], c.desc, 2, &isnull);
}

// Frozen: where a refresh's frozen buckets end (args.hpp frozen_before).
struct Frozen {
    bool any;
    Datum open;  // the first bucket not frozen
};

// claimed_unfrozen: the rows of the last SPI result whose bucket is not
// frozen; *frozen counts the others (their invalidations are discarded).
static Claimed claimed_unfrozen(const Rollup *r, const Frozen &fz, int64 *frozen) {
    Claimed c = {(HeapTuple *) palloc((SPI_processed + 1) * sizeof(HeapTuple)), 0, SPI_tuptable->tupdesc};
    for (uint64 i = 0; i < SPI_processed; i++) {
        c.rows[c.n] = SPI_tuptable->vals[i];
        if (!fz.any || !time_less(r, claimed_bucket(c, c.n), fz.open)) c.n++;
    }
    *frozen = (int64) (SPI_processed - c.n);
    return c;
}

// claimed_null_scope: whether a claimed key has a NULL scope value.
static bool claimed_null_scope(const Rollup *r, const Claimed &c) {
    for (uint64 i = 0; i < c.n && r->nscope > 0; i++) {
        bool isnull;
        HeapTupleHeader h = DatumGetHeapTupleHeader(SPI_getbinval(c.rows[i], c.desc, 1, &isnull));
        HeapTupleData row;
        row.t_len = HeapTupleHeaderGetDatumLength(h);
        row.t_data = h;
        for (int a = 2; a <= 1 + r->nscope; a++)
            if (heap_attisnull(&row, a, NULL)) return true;
    }
    return false;
}

// claimed_rows_array: the claimed rows (one composite column) as an array
// of the dirty log's row type.
static Datum claimed_rows_array(const Rollup *r, const Claimed &c) {
    Oid rowtype = get_rel_type_id(r->dirty_log);
    uint64 n = c.n;
    Datum *elems = (Datum *) palloc((n + 1) * sizeof(Datum));
    for (uint64 i = 0; i < n; i++) {
        bool isnull;
        elems[i] = SPI_getbinval(c.rows[i], c.desc, 1, &isnull);
    }
    int16 typlen;
    bool typbyval;
    char typalign;
    get_typlenbyvalalign(rowtype, &typlen, &typbyval, &typalign);
    return PointerGetDatum(construct_array(elems, (int) n, rowtype, typlen, typbyval, typalign));
}

static int compare_int64(const void *x, const void *y) {
    int64 u = *(const int64 *) x, v = *(const int64 *) y;
    return u < v ? -1 : u > v ? 1 : 0;
}

// claimed_buckets: the distinct buckets of the claimed rows, sorted, as
// int64 (timestamps; days for dates); returns how many.
static int claimed_buckets(const Rollup *r, const Claimed &c, int64 **out) {
    uint64 n = c.n;
    int64 *b = (int64 *) palloc((n + 1) * sizeof(int64));
    for (uint64 i = 0; i < n; i++) b[i] = int_of(r, claimed_bucket(c, i));
    qsort(b, n, sizeof(int64), compare_int64);
    int distinct = 0;
    for (uint64 i = 0; i < n; i++)
        if (i == 0 || b[i] != b[distinct - 1]) b[distinct++] = b[i];
    *out = b;
    return distinct;
}


// claimed_buckets_array: those buckets as an array of the time type.
static Datum claimed_buckets_array(const Rollup *r, const Claimed &c) {
    int64 *b;
    int n = claimed_buckets(r, c, &b);
    Datum *elems = (Datum *) palloc((n + 1) * sizeof(Datum));
    for (int i = 0; i < n; i++) elems[i] = datum_of(r, b[i]);
    int16 typlen;
    bool typbyval;
    char typalign;
    get_typlenbyvalalign(r->time_type, &typlen, &typbyval, &typalign);
    return PointerGetDatum(construct_array(elems, n, r->time_type, typlen, typbyval, typalign));
}

// claimed_ranges: the source values the claimed buckets cover, as at most MAX_SOURCE_RANGES inclusive [lo, hi] ranges:
// adjacent buckets merged, then the closest ranges until few enough.  The
// recompute reads those ranges only, each page once (bitmap OR, or one
// sequential scan when they cover most of the table).
static int claimed_ranges(const Rollup *r, const Claimed &c, Datum *lo, Datum *hi) {
    int64 *b;
    int n = claimed_buckets(r, c, &b);
    BucketSpec spec;
    bucket_spec_init(&spec, r->kind, r->width_usecs,
                     r->kind == TimeKind::Timestamptz ? lookup_time_zone(r->time_zone) : NULL);
    int64 *rlo = (int64 *) palloc((n + 1) * sizeof(int64)), *rhi = (int64 *) palloc((n + 1) * sizeof(int64));
    int count = 0;
    for (int i = 0; i < n; i++) {
        Datum l, h;
        bucket_bounds(&spec, datum_of(r, b[i]), &l, &h);
        if (count > 0 && int_of(r, l) <= rhi[count - 1] + 1) {
            rhi[count - 1] = Max(rhi[count - 1], int_of(r, h));
        } else {
            rlo[count] = int_of(r, l);
            rhi[count] = int_of(r, h);
            count++;
        }
    }
    while (count > MAX_SOURCE_RANGES) {  // merge across the smallest gap
        int best = 0;
        for (int i = 1; i < count - 1; i++)
            if (rlo[i + 1] - rhi[i] < rlo[best + 1] - rhi[best]) best = i;
        rhi[best] = rhi[best + 1];
        for (int i = best + 1; i < count - 1; i++) {
            rlo[i] = rlo[i + 1];
            rhi[i] = rhi[i + 1];
        }
        count--;
    }
    for (int i = 0; i < count; i++) {
        lo[i] = datum_of(r, rlo[i]);
        hi[i] = datum_of(r, rhi[i]);
    }
    return count;
}

// lock_state_row: lock the rollup's state row; returns scanned_through
// (updated_at mode; -infinity if never set).  Under REPEATABLE READ or

// run_counts: run a recompute statement; its row is (keys, upserted, deleted).
static void run_counts(const char *sql, const Params &p, Outcome *o) {
    spi_exec(sql, p.n, const_cast<Oid *>(p.types), const_cast<Datum *>(p.values), NULL, false);
    o->keys = spi_int64(1);
    o->upserted = spi_int64(2);
    o->deleted = spi_int64(3);
}

// scan_updated: updated_at mode: log the keys of rows stamped in
// (scanned, horizon]; false when the horizon has not moved past scanned.
static bool scan_updated(const Rollup *r, TimestampTz scanned, TimestampTz *horizon) {
    if (r->updated_at_attnum == 0 || !updated_at_horizon(r, false, horizon) || *horizon <= scanned) return false;
    Params p = bucket_params(r);
    p.types[2] = p.types[3] = TIMESTAMPTZOID;
    p.values[2] = TimestampTzGetDatum(scanned);
    p.values[3] = TimestampTzGetDatum(*horizon);
    p.n = 4;
    RollupSession session = enter_rollup_session(r);
    spi_exec(scan_updated_sql(r), p.n, p.types, p.values, NULL, false);
    leave_rollup_session(session);
    return true;
}

// Failures: the keys a refresh could not recompute (isolate_failures).
struct Failures {
    int64 keys;          // distinct keys
    ErrorData *first;    // the first one's error
    char *first_key;     // and its log row, as text
    List *rows;          // their log rows (HeapTuple), put back in the log
    List *untried;       // log rows not tried once the budget was spent, put back too
    TupleDesc desc;      // of those rows (the claim's)
};

// The most failing keys one refresh isolates: past that, a group of keys
// that fails is not split further and stays pending (when every key fails,
// isolating each would cost a subtransaction and a source scan per key).
constexpr int64 MAX_FAILING_KEYS = 32;

// key_specific: whether an error may be one key's fault (its rows' values),
// rather than the refresh's (a lock or statement timeout, a deadlock, a
// serialization failure, a missing privilege): only those are isolated.
static bool key_specific(int sqlerrcode) {
    int category = ERRCODE_TO_CATEGORY(sqlerrcode);
    return category == ERRCODE_DATA_EXCEPTION || category == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
           category == ERRCODE_PROGRAM_LIMIT_EXCEEDED || category == ERRCODE_PLPGSQL_ERROR ||
           category == ERRCODE_SQL_ROUTINE_EXCEPTION || category == ERRCODE_EXTERNAL_ROUTINE_EXCEPTION ||
           category == ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION;
}

// What the planner takes for the number of distinct keys it cannot estimate
// (selfuncs.h's DEFAULT_NUM_DISTINCT).
constexpr uint64 PLANNER_GUESSED_KEYS = 200;

// recompute_rows: one recompute statement over the claimed rows c (they
// are recomputed by key; adds its counts to o).
static void recompute_rows(const Rollup *r, const Claimed &c, Outcome *o) {
    Datum lo[MAX_SOURCE_RANGES], hi[MAX_SOURCE_RANGES];
    int nranges = c.n > 0 ? claimed_ranges(r, c, lo, hi) : 0;
    Params p = recompute_keys_params(r, claimed_rows_array(r, c), nranges, lo, hi, claimed_buckets_array(r, c));
    Outcome part;
    // The planner cannot see how many keys there are: it guesses
    // PLANNER_GUESSED_KEYS.  Past that, a nested loop over the keys, probing
    // an index of the user's on a dimension column once per key, costs more
    // than the planner thinks (9,993 keys: 1.6x the time of one scan of the
    // claimed ranges hashed against the keys, bench/results/results.md); so
    // then the ranges are scanned and hashed, whatever indexes the source has.
    // (Not for a view source: its joins to the other tables are index
    // lookups per row read, and hashing would read those tables whole.)
    int nest = NewGUCNestLevel();
    if (c.n > PLANNER_GUESSED_KEYS && r->join == NULL)
        (void) set_config_option("enable_nestloop", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    run_counts(recompute_keys_sql(r, nranges, claimed_null_scope(r, c)), p, &part);
    AtEOXact_GUC(true, nest);
    o->keys += part.keys;
    o->upserted += part.upserted;
    o->deleted += part.deleted;
}

// KeyGroups: claimed rows sorted so that the rows of one key are adjacent;
// group g is rows[start[g], start[g + 1]).
struct KeyGroups {
    HeapTuple *rows;
    TupleDesc desc;
    char **text;  // each row's key, as text
    int *start;
    int n;
};

static int compare_text(const void *a, const void *b, void *arg) {
    char **text = (char **) arg;
    return strcmp(text[*(const int *) a], text[*(const int *) b]);
}

// shuffle_groups: the groups in a random order.  Bisection finds the
// failing keys of the groups it tries first; when more keys fail than one
// refresh isolates, another order next time finds others, and the good
// keys beside them get refreshed.
static void shuffle_groups(KeyGroups *g) {
    int n = g->n;
    int *order = (int *) palloc((n + 1) * sizeof(int));
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int) pg_prng_uint64_range(&pg_global_prng_state, 0, i);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int total = g->start[n];
    HeapTuple *rows = (HeapTuple *) palloc((total + 1) * sizeof(HeapTuple));
    char **text = (char **) palloc((total + 1) * sizeof(char *));
    int *start = (int *) palloc((n + 2) * sizeof(int));
    int k = 0;
    for (int i = 0; i < n; i++) {
        start[i] = k;
        for (int row = g->start[order[i]]; row < g->start[order[i] + 1]; row++) {
            rows[k] = g->rows[row];
            text[k++] = g->text[row];
        }
    }
    start[n] = k;
    g->rows = rows;
    g->text = text;
    g->start = start;
}

static KeyGroups group_by_key(const Claimed &c) {
    KeyGroups g;
    int n = (int) c.n;
    int *order = (int *) palloc((n + 1) * sizeof(int));
    char **text = (char **) palloc((n + 1) * sizeof(char *));
    for (int i = 0; i < n; i++) {
        order[i] = i;
        text[i] = SPI_getvalue(c.rows[i], c.desc, 1);
    }
    qsort_arg(order, n, sizeof(int), compare_text, text);
    g.rows = (HeapTuple *) palloc((n + 1) * sizeof(HeapTuple));
    g.text = (char **) palloc((n + 1) * sizeof(char *));
    g.start = (int *) palloc((n + 2) * sizeof(int));
    g.desc = c.desc;
    g.n = 0;
    for (int i = 0; i < n; i++) {
        g.rows[i] = heap_copytuple(c.rows[order[i]]);
        g.text[i] = text[order[i]];
        if (i == 0 || strcmp(g.text[i], g.text[i - 1]) != 0) g.start[g.n++] = i;
    }
    g.start[g.n] = n;
    shuffle_groups(&g);
    return g;
}

struct Attempt {
    const Rollup *r;
    Claimed c;
    Outcome part;
};

// isolate: recompute groups [lo, hi) in a subtransaction; if that fails,
// halves, down to single keys, which are the failures.
static void isolate(const Rollup *r, const KeyGroups &g, int lo, int hi, Outcome *o, Failures *f) {
    if (lo >= hi) return;
    Attempt a;
    memset(&a, 0, sizeof a);
    a.r = r;
    a.c = {g.rows + g.start[lo], (uint64) (g.start[hi] - g.start[lo]), g.desc};
    ErrorData *e = try_in_subtransaction(
        [](void *arg) {
            Attempt *at = (Attempt *) arg;
            recompute_rows(at->r, at->c, &at->part);
        },
        &a);
    if (e == NULL) {
        o->keys += a.part.keys;
        o->upserted += a.part.upserted;
        o->deleted += a.part.deleted;
        return;
    }
    if (!key_specific(e->sqlerrcode)) ReThrowError(e);  // the whole refresh fails, no key is blamed
    if (hi - lo > 1 && f->keys < MAX_FAILING_KEYS) {
        int mid = lo + (hi - lo) / 2;
        isolate(r, g, lo, mid, o, f);
        isolate(r, g, mid, hi, o, f);
        return;
    }
    if (hi - lo > 1 || f->keys >= MAX_FAILING_KEYS) {  // the budget is spent: these stay pending, untried
        for (int i = g.start[lo]; i < g.start[hi]; i++) f->untried = lappend(f->untried, g.rows[i]);
        return;
    }
    f->keys++;
    if (f->first == NULL) {
        f->first = e;
        // The key as text, cut short for a message (a key can be as large as
        // its dimension values).
        const char *key = g.text[g.start[lo]];
        int len = strlen(key);
        f->first_key = len <= 200 ? pstrdup(key) : psprintf("%.*s...", pg_mbcliplen(key, len, 200), key);
    }
    for (int i = g.start[lo]; i < g.start[hi]; i++) f->rows = lappend(f->rows, g.rows[i]);
}

// put_back: the failing keys' log rows go back to the log: still pending,
// retried by the next refresh.
static void put_back(const Rollup *r, const Failures &f) {
    List *back = list_concat_copy(f.rows, f.untried);
    if (back == NIL) return;
    Claimed c = {(HeapTuple *) palloc((list_length(back) + 1) * sizeof(HeapTuple)), 0, f.desc};
    ListCell *lc;
    foreach (lc, back) c.rows[c.n++] = (HeapTuple) lfirst(lc);
    Oid type = get_array_type(get_rel_type_id(r->dirty_log));
    Datum array = claimed_rows_array(r, c);
    spi_exec(psprintf("INSERT INTO %s SELECT * FROM unnest($1)", qualified_relation_name(r->dirty_log)), 1, &type,
             &array, NULL, false);
}

// claim: the log rows of the keys to refresh (all, or max_keys), less those
// of frozen buckets (*frozen counts them: discarded).
static Claimed claim(const Rollup *r, bool limited, int64 max_keys, const Frozen &fz, int64 *frozen) {
    // $1 the limit; $2 the first bucket not frozen: the limit counts keys
    // of live buckets only, and every frozen one goes along.
    Oid types[2] = {INT8OID, r->time_type};
    Datum values[2] = {Int64GetDatum(max_keys), fz.open};
    bool frozen_param = limited && fz.any;
    spi_exec(claim_keys_sql(r, limited, frozen_param), limited ? (frozen_param ? 2 : 1) : 0, types, values, NULL,
             false);
    int64 dropped;
    Claimed c = claimed_unfrozen(r, fz, &dropped);
    *frozen += dropped;
    return c;
}

// Merge: what merge_deltas did.
struct Merge {
    const Rollup *r;
    const Frozen *fz;
    int64 groups, upserted, discarded;
};

// merge_deltas: the additive path (additive.hpp): add the partials of the
// inserts this snapshot sees to the rollup's rows (after the recompute,
// whose keys' partials went with it).  Partials that cannot be added (an
// overflow) become dirty keys, for the next refresh to recompute (and
// isolate a key that fails); returns false then.
static bool merge_deltas(const Rollup *r, const Frozen &fz, Outcome *o, int64 *frozen) {
    if (!OidIsValid(r->delta_log) || get_rel_name(r->delta_log) == NULL) return true;
    Merge m = {r, &fz, 0, 0, 0};
    ErrorData *e = try_in_subtransaction(
        [](void *arg) {
            Merge *m = (Merge *) arg;
            Oid type = m->r->time_type;
            Datum open = m->fz->open;
            spi_exec(merge_deltas_sql(m->r, m->fz->any), m->fz->any ? 1 : 0, &type, &open, NULL, false);
            m->groups = spi_int64(1);
            m->upserted = spi_int64(2);
            m->discarded = spi_int64(3);
        },
        &m);
    if (e != NULL) {
        if (!key_specific(e->sqlerrcode)) ReThrowError(e);
        spi_exec(demote_deltas_sql(r), 0, NULL, NULL, NULL, false);
        return false;
    }
    o->keys += m.groups;
    o->upserted += m.upserted;
    *frozen += m.discarded;
    return true;
}

// recompute_claimed: claim the keys (all, or max_keys) and recompute those
// of buckets not frozen (*frozen counts the others' log rows); returns
// whether the log is now drained of what this snapshot saw.  With f, key
// by key where needed: the keys that fail go back to the log, the others
// are recomputed.
static bool recompute_claimed(const Rollup *r, bool limited, int64 max_keys, const Frozen &fz, Outcome *o,
                              int64 *frozen, Failures *f) {
    o->keys = o->upserted = o->deleted = 0;
    Claimed c = claim(r, limited, max_keys, fz, frozen);
    if (f == NULL) {
        if (c.n > 0) recompute_rows(r, c, o);  // (none: only partials were pending)
    } else {
        // Key by key where needed; a batch goes on claiming (the failing
        // keys are out of the log until put back) until it has refreshed
        // its share, so keys that fail never stop the others.
        for (;;) {
            f->desc = c.desc;
            KeyGroups g = group_by_key(c);
            isolate(r, g, 0, g.n, o, f);
            if (!limited || c.n == 0 || o->keys >= max_keys || f->keys >= MAX_FAILING_KEYS) break;
            c = claim(r, limited, max_keys - o->keys, fz, frozen);
        }
        put_back(r, *f);
        if (f->keys > 0 || f->untried != NIL) return false;  // the watermark waits for them
    }
    // Fewer live keys than the limit: the log held no more.
    if (!limited || o->keys < max_keys) return true;
    spi_exec(log_empty_sql(r), 0, NULL, NULL, NULL, false);
    return spi_bool(1);
}

// older_writers_running: whether a rebuild asked for by a replaced view
// source must wait: a transaction that began writing before the replacement
// (its capture may have read the old join) is still running.
static bool older_writers_running(const Rollup *r) {
    int64 after = rebuild_after(r);
    if (after == 0) return false;
    uint64 next = U64FromFullTransactionId(ReadNextFullTransactionId());
    // (From another cluster, restored, or from long ago: nothing to wait for.)
    if ((uint64) after > next || next - (uint64) after > (uint64) 1 << 30) return false;
    TransactionId oldest = GetOldestActiveTransactionId();
    return TransactionIdIsNormal(oldest) && TransactionIdPrecedes(oldest, (TransactionId) after);
}

// refresh_keys: steps 3-6 for one locked rollup (runs in the subtransaction);
// with f, isolating the keys that fail.
static void refresh_keys(const Rollup *r, bool limited, int64 max_keys, Outcome *o, Failures *f) {
    TimestampTz t = watermark_candidate();
    TimestampTz scanned = lock_rollup_state(r);
    Frozen fz;
    fz.any = frozen_before(r, &fz.open);
    // updated_at mode: the horizon is computed before the scan's snapshot
    // is taken, with memoria's own search_path.
    TimestampTz horizon = 0;
    bool scanned_more = scan_updated(r, scanned, &horizon);
    bool rebuild_waits = older_writers_running(r);
    bool backfilling = OidIsValid(r->delta_log) && needs_backfill(r);
    RollupSession session = enter_rollup_session(r);
    // A view source: the writes to its joined tables become fact keys first.
    translate_links(r);
    // Not read-only: that would reuse the caller's snapshot, which cannot see
    // the keys flush_pending_keys() just wrote.
    spi_exec(log_state_sql(r), 0, NULL, NULL, NULL, false);
    bool pending = spi_bool(1), rebuild = spi_bool(2);
    bool drained = true;
    int64 frozen = 0;
    o->record.status = "idle";
    if (rebuild && rebuild_waits) {
        // Nothing now: the whole log waits for the rebuild (and the
        // watermark with it).
        rebuild = pending = drained = false;
        o->record.status = "busy";
    }
    if (rebuild && f != NULL) {
        // A rebuild that failed: every key it would recompute, one by one
        // (those of the source's rows and of the rollup's), so that a key
        // that fails does not stop the rest.
        Params p = bucket_params(r);
        spi_exec(dirty_all_keys_sql(r, r->fact), p.n, p.types, p.values, NULL, false);
        spi_exec(expand_rebuild_sql(r), 0, NULL, NULL, NULL, false);
        rebuild = false;
        pending = true;
    }
    if (rebuild) {
        o->rebuilt = true;
        // Everything not frozen: frozen buckets keep their rows whatever
        // happened to the source (TRUNCATE, a dropped partition).
        Datum first = infinity_of(r->time_type, false), last = infinity_of(r->time_type, true);
        if (fz.any) (void) clamp_to(r, fz.open, &first, last);
        BucketSpec spec;
        bucket_spec_init(&spec, r->kind, r->width_usecs,
                         r->kind == TimeKind::Timestamptz ? lookup_time_zone(r->time_zone) : NULL);
        bool exact = window_bounds_exact(&spec, first, last);
        Params p = window_params(r, first, last);
        run_counts(recompute_window_sql(r, WINDOW_CLAIM_LOG | (exact ? WINDOW_EXACT_BOUNDS : 0)), p, o);
        o->record.status = "ok";
    } else if (pending) {
        // Measures added and not backfilled yet are NULL in the rollup's
        // rows: a partial would fill them with itself alone.  Until the
        // backfill, inserts are recomputed like any other change.
        bool merge = OidIsValid(r->delta_log) && !backfilling;
        if (OidIsValid(r->delta_log) && backfilling && get_rel_name(r->delta_log) != NULL)
            spi_exec(demote_deltas_sql(r), 0, NULL, NULL, NULL, false);
        drained = recompute_claimed(r, limited, max_keys, fz, o, &frozen, f);
        bool limit_reached = !drained && limited && (f == NULL || (f->keys == 0 && f->untried == NIL));
        if (merge && !merge_deltas(r, fz, o, &frozen)) {
            drained = false;
        } else if (limit_reached) {
            // (The partials it saw, left for the merge, are gone now.)
            spi_exec(log_empty_sql(r), 0, NULL, NULL, NULL, false);
            drained = spi_bool(1);
        }
        o->record.status = "ok";
    }
    leave_rollup_session(session);
    if (o->rebuilt) set_rebuild_after(r, 0);
    if (frozen > 0) count_frozen_discarded(r->id, frozen);
    if (scanned_more) {
        set_scanned_through(r, horizon);
        scanned = horizon;
    }
    // In updated_at mode the rollup is exact only up to what was scanned.
    if (r->updated_at_attnum != 0 && scanned < t) t = scanned;
    // Failing keys: counted by an isolating refresh; none once the log is
    // drained; otherwise as the last refresh that looked found them.
    o->record.failing = f != NULL ? f->keys : drained ? 0 : -1;
    if (f != NULL && f->keys > 0) {
        o->record.status = "error";
        int len = strlen(f->first->message);
        o->record.error = psprintf("%s%lld key%s cannot be recomputed (the others were): %s: %.*s%s (key %s)",
                                   f->untried != NIL ? "at least " : "", (long long) f->keys, f->keys == 1 ? "" : "s",
                                   unpack_sql_state(f->first->sqlerrcode), pg_mbcliplen(f->first->message, len, 500),
                                   f->first->message, len > 500 ? "..." : "", f->first_key);
        ereport(WARNING, (errcode(f->first->sqlerrcode),
                          errmsg("memoria: refresh of rollup \"%s\": %s", r->name, o->record.error),
                          errhint("They stay pending and every refresh tries them again; fix the source rows or "
                                  "the measure.")));
    }
    finish(r, o, drained, t, false);
}

static const char *CAPTURE_HINT = "Enable the trigger again (ALTER TABLE ... ENABLE TRIGGER ...), or drop the rollup; "
                                  "once capture is back the next refresh rebuilds the rollup.";

static const char *RESTORE_HINT = "pg_restore makes a rollup's triggers and key last; it refreshes once they are "
                                  "back.  A restore that left them out: a superuser's SELECT "
                                  "memoria_internal.adopt(id) makes them and rebuilds the rollup.";

// capture_error: why the rollup's writes are not all being captured, or
// NULL.  The state it records survives a later ERROR: callers run it before
// any subtransaction.
static char *capture_error(const Rollup *r) {
    char *problem = settle_capture(r, false);
    return problem == NULL ? NULL : psprintf("capture of rollup \"%s\" is off: %s", r->name, problem);
}

static void fail(const Rollup *r, Outcome *o, int sqlstate, const char *message, const char *hint) {
    o->record.status = "error";
    // (A message can be as long as a value in it: cut short.)
    int len = strlen(message);
    o->record.error = len <= 1000 ? message : psprintf("%.*s...", pg_mbcliplen(message, len, 1000), message);
    o->record.failing = -1;
    o->keys = o->upserted = o->deleted = 0;
    ereport(WARNING, (errcode(sqlstate), errmsg("memoria: refresh of rollup \"%s\" failed: %s", r->name, o->record.error),
                      hint ? errhint("%s", hint) : 0));
    finish(r, o, false, 0, false);
}

// refresh_one: refresh one rollup; never raises except for a cancel.
static Outcome refresh_one(const Rollup *r, bool limited, int64 max_keys) {
    Outcome o;
    memset(&o, 0, sizeof o);
    o.record.started = GetCurrentTimestamp();
    if (!try_lock_rollup(r->id)) {
        o.record.status = "busy";
        o.has_watermark = read_watermark(r, &o.watermark);
        return o;
    }
    char *waiting;
    if (!settle_restored(r, &waiting)) {
        fail(r, &o, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
             psprintf("rollup \"%s\" is being restored: %s", r->name, waiting), RESTORE_HINT);
        return o;
    }
    follow_source_owner(r);
    if (char *problem = capture_error(r)) {
        fail(r, &o, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, problem, CAPTURE_HINT);
        return o;
    }
    struct Job {
        const Rollup *r;
        bool limited;
        int64 max_keys;
        Outcome *o;
        Failures *f;
    } job = {r, limited, max_keys, &o, NULL};
    auto attempt = [](void *arg) {
        Job *j = (Job *) arg;
        refresh_keys(j->r, j->limited, j->max_keys, j->o, j->f);
    };
    ErrorData *e = try_in_subtransaction(attempt, &job);
    if (e != NULL && !key_specific(e->sqlerrcode)) {
        fail(r, &o, e->sqlerrcode, e->message, NULL);
    } else if (e != NULL) {
        // Again, key by key: one bad row (a measure's division by zero, an
        // oversized dimension value) keeps its own key pending, not all.
        Failures f;
        memset(&f, 0, sizeof f);
        job.f = &f;
        memset(&o, 0, sizeof o);
        o.record.started = GetCurrentTimestamp();
        if (try_in_subtransaction(attempt, &job) != NULL) fail(r, &o, e->sqlerrcode, e->message, NULL);
    }
    return o;
}

const char *refresh_now(const Rollup *r, int64 *keys) {
    flush_pending_keys();
    SPI_connect();
    Outcome o = refresh_one(r, false, 0);
    SPI_finish();
    *keys = o.keys;
    if (strcmp(o.record.status, "error") == 0) return o.record.error;
    if (strcmp(o.record.status, "busy") == 0) return "another refresh of the rollup is running";
    return NULL;
}

// outcome_values: the row refresh() and refresh_window() return.
static void outcome_values(const Rollup *r, const Outcome &o, Datum *values, bool *nulls) {
    values[0] = CStringGetTextDatum(r->name);
    values[1] = CStringGetTextDatum(o.record.status);
    values[2] = Int64GetDatum(o.keys);
    values[3] = Int64GetDatum(o.upserted);
    values[4] = Int64GetDatum(o.deleted);
    values[5] = TimestampTzGetDatum(o.watermark);
    values[6] = IntervalPGetDatum(elapsed_since(o.record.started));
    values[7] = o.record.error ? CStringGetTextDatum(o.record.error) : (Datum) 0;
    for (int i = 0; i < 8; i++) nulls[i] = false;
    nulls[5] = !o.has_watermark;
    nulls[7] = o.record.error == NULL;
}

// recompute_window: refresh_window's work, in the rollup's session; returns
// whether the window held every source row (a backfill is then complete).
static bool recompute_window(const Rollup *r, Datum first, Datum last, bool whole, bool exact, Outcome *o) {
    Params p = window_params(r, first, last);
    RollupSession session = enter_rollup_session(r);
    // Under the rollup's lock nobody else writes its rows: if the window is
    // empty now it stays so until this statement runs.
    spi_exec(window_is_empty_sql(r), p.n, p.types, p.values, NULL, false);
    int flags = (whole ? WINDOW_CLAIM_LOG : 0) | (spi_bool(1) ? WINDOW_TARGET_EMPTY : 0) |
                (exact ? WINDOW_EXACT_BOUNDS : 0);
    run_counts(recompute_window_sql(r, flags), p, o);
    bool covers_all = whole;
    if (!covers_all) {
        spi_exec(window_covers_source_sql(r), p.n, p.types, p.values, NULL, true);
        covers_all = spi_bool(1);
    }
    leave_rollup_session(session);
    return covers_all;
}

}  // namespace memoria

using namespace memoria;

// without_shard_rollups: the rollups, less the shard rollups of this node's
// distributed rollups (a coordinator holding shards): those refresh through
// their distributed rollup's fan-out, in transactions of their own.
static List *without_shard_rollups(List *rollups) {
    if (!citus_rollups_exist()) return rollups;
    List *kept = NIL;
    ListCell *lc;
    foreach (lc, rollups)
        if (!citus_shard(((const Rollup *) lfirst(lc))->source, true)) kept = lappend(kept, lfirst(lc));
    return kept;
}

MEMORIA_FUNCTION(memoria_refresh) {
    bool limited = !PG_ARGISNULL(1);
    int64 max_keys = limited ? PG_GETARG_INT64(1) : 0;
    if (limited && max_keys < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("max_keys must not be negative"),
                        errhint("Use NULL to refresh every dirty key.")));
    if (!PG_ARGISNULL(0) && citus_rollup_exists(text_to_cstring(PG_GETARG_TEXT_PP(0))))
        return citus_forward(fcinfo, "citus_refresh");
    List *rollups = PG_ARGISNULL(0) ? NIL : list_make1(load_rollup(text_to_cstring(PG_GETARG_TEXT_PP(0))));
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    if (PG_ARGISNULL(0)) {
        // The rollups of distributed tables first: a local rollup may read
        // the partial mode's table, never the other way round.  The local
        // ones are read after them (a refresh there may have given that
        // table, and its rollups, to its source's new owner).
        citus_append_refreshes(fcinfo);
        rollups = without_shard_rollups(load_rollups());
    }
    ListCell *lc;
    foreach (lc, rollups) {
        const Rollup *r = (const Rollup *) lfirst(lc);
        // The caller's writes, and what the rollups refreshed before this
        // one wrote to its source (a chain, lower levels first).
        flush_pending_keys();
        SPI_connect();
        Outcome o = refresh_one(r, limited, max_keys);
        Datum values[8];
        bool nulls[8];
        outcome_values(r, o, values, nulls);  // (before SPI_finish frees what o points to)
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        SPI_finish();
    }
    return (Datum) 0;
}

// memoria_internal.refresh_order(): the rollups the caller may refresh, in
// the order memoria.run() takes them (lower levels of a chain first).
MEMORIA_FUNCTION(memoria_refresh_order) {
    List *rollups = without_shard_rollups(load_rollups());
    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    ListCell *lc;
    foreach (lc, rollups) {
        Datum value = CStringGetTextDatum(((const Rollup *) lfirst(lc))->name);
        bool isnull = false;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
    }
    return (Datum) 0;
}

MEMORIA_FUNCTION(memoria_refresh_window) {
    const char *name = name_arg(fcinfo);
    if (citus_rollup_exists(name)) return citus_forward(fcinfo, "citus_refresh_window");
    TimestampTz ws, we;
    window_args(fcinfo, &ws, &we);
    Rollup *r = load_rollup(name);
    bool include_frozen = PG_NARGS() > 3 && !PG_ARGISNULL(3) && PG_GETARG_BOOL(3);  // (3 before 0.4.0)
    Datum first, last;
    bool exact;
    window_buckets(r, ws, we, &first, &last, &exact);
    bool whole = TIMESTAMP_IS_NOBEGIN(ws) && TIMESTAMP_IS_NOEND(we);
    // Frozen buckets keep their rows unless asked (their raw rows may be gone).
    bool anything = include_frozen || clamp_to_unfrozen(r, &first, last);
    if (!include_frozen && exact) {
        BucketSpec spec;
        bucket_spec_init(&spec, r->kind, r->width_usecs,
                         r->kind == TimeKind::Timestamptz ? lookup_time_zone(r->time_zone) : NULL);
        exact = window_bounds_exact(&spec, first, last);
    }
    // A whole-window refresh empties the log, this transaction's rows too.
    flush_pending_keys();
    Outcome o;
    memset(&o, 0, sizeof o);
    o.record.started = GetCurrentTimestamp();
    // Wait for (do not skip) a running refresh: two recomputes of a key from
    // different snapshots must not land out of order.
    lock_rollup(r->id);
    char *waiting;
    if (!settle_restored(r, &waiting))
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("rollup \"%s\" is being restored: %s", r->name, waiting), errhint("%s", RESTORE_HINT)));
    follow_source_owner(r);
    if (char *problem = capture_error(r))
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE), errmsg("%s", problem),
                        errhint("%s", CAPTURE_HINT)));
    TimestampTz t = watermark_candidate();
    SPI_connect();
    (void) lock_rollup_state(r);
    bool covers_all = anything && recompute_window(r, first, last, whole, exact, &o);
    o.record.failing = whole ? 0 : -1;  // only a whole window empties the log
    o.record.status = "ok";
    if (whole && rebuild_after(r) != 0) {
        // It consumed a replaced view's rebuild: again, unless no writer
        // older than the replacement is left.
        if (older_writers_running(r)) {
            mark_rebuild(r);
            covers_all = false;
        } else {
            set_rebuild_after(r, 0);
        }
    }
    finish(r, &o, covers_all, t, covers_all);
    SPI_finish();
    TupleDesc desc;
    if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "return type must be a row type");
    Datum values[8];
    bool nulls[8];
    outcome_values(r, o, values, nulls);
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls));
}

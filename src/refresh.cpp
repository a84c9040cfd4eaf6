// refresh.cpp: memoria.refresh(), memoria.refresh_window(), memoria.verify()
// and memoria._pending_keys().
//
// A refresh of one rollup:
//   1. takes the rollup's advisory lock with try-lock (transaction scoped:
//      nothing outlives an error, a cancel or a dead backend); busy -> 'busy';
//   2. notes the watermark candidate T: the current time under READ COMMITTED
//      (each statement's snapshot is newer), the transaction start otherwise
//      (the transaction snapshot is no older) -- every change committed before
//      T is visible to the statements that follow;
//   3. in a subtransaction, as the rollup's owner, with the rollup's
//      search_path and time zone, runs one statement that claims the dirty
//      keys it sees, recomputes them from the source and replaces their rows
//      (sqlgen.cpp); a pending TRUNCATE turns it into a full rebuild;
//   4. if it claimed every key it could see, moves the watermark up to T;
//   5. records the outcome in memoria.rollup_state.  A failure rolls back the
//      subtransaction only; the error is then recorded in the outer
//      transaction, so it survives, and the other rollups go on.
#include "bucket.hpp"
#include "capture.hpp"
#include "guard.hpp"
#include "horizon.hpp"
#include "rollup.hpp"
#include "sqlgen.hpp"
#include "triggers.hpp"

namespace memoria {

struct Outcome {
    const char *status;  // ok | busy | error | idle
    int64 keys, upserted, deleted;
    bool has_watermark;
    TimestampTz watermark;
    TimestampTz started;
    char *error;
};

static Interval *elapsed_since(TimestampTz started) {
    return DatumGetIntervalP(DirectFunctionCall2(timestamp_mi, TimestampTzGetDatum(GetCurrentTimestamp()),
                                                 TimestampTzGetDatum(started)));
}

static TimestampTz watermark_candidate(void) {
    return IsolationUsesXactSnapshot() ? GetCurrentTransactionStartTimestamp() : GetCurrentTimestamp();
}

// base_params: $1 width, $2 time zone.
static void base_params(const Rollup *r, Oid *types, Datum *values) {
    types[0] = INTERVALOID;
    values[0] = IntervalPGetDatum(&r->bucket);
    types[1] = TEXTOID;
    values[1] = CStringGetTextDatum(r->time_zone);
}

static Datum infinity_of(Oid type, bool upper) {
    if (type == DATEOID) {
        DateADT d;
        if (upper) DATE_NOEND(d); else DATE_NOBEGIN(d);
        return DateADTGetDatum(d);
    }
    Timestamp t;
    if (upper) TIMESTAMP_NOEND(t); else TIMESTAMP_NOBEGIN(t);
    return TimestampGetDatum(t);
}

// record_outcome: write what a refresh did to memoria.rollup_state (as the
// extension's owner); with advance, moves the watermark up to T unless the
// rollup still needs a backfill.  Returns the watermark now in force.
static void record_outcome(const Rollup *r, Outcome *o, bool advance, TimestampTz t, bool backfilled) {
    SavedUser saved = become_user(extension_owner());
    Oid types[8] = {INT4OID, BOOLOID, TIMESTAMPTZOID, INTERVALOID, TEXTOID, TEXTOID, BOOLOID, TIMESTAMPTZOID};
    Datum values[8] = {Int32GetDatum(r->id), BoolGetDatum(advance), TimestampTzGetDatum(t),
                       IntervalPGetDatum(elapsed_since(o->started)), CStringGetTextDatum(o->status),
                       o->error ? CStringGetTextDatum(o->error) : (Datum) 0, BoolGetDatum(backfilled),
                       TimestampTzGetDatum(o->started)};
    char nulls[8] = {' ', ' ', ' ', ' ', ' ', o->error ? ' ' : 'n', ' ', ' '};
    spi_exec("UPDATE memoria.rollup_state SET "
             "needs_backfill = needs_backfill AND NOT $7, "
             "watermark = CASE WHEN $2 AND (NOT needs_backfill OR $7) "
             "  THEN greatest(watermark, $3) ELSE watermark END, "
             "last_refresh_at = $8, last_duration = $4, last_status = $5, last_error = $6, "
             "refreshes = refreshes + 1 WHERE rollup_id = $1 RETURNING watermark",
             8, types, values, nulls, false);
    bool isnull = true;
    if (SPI_processed > 0) {
        Datum w = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        if (!isnull) o->watermark = DatumGetTimestampTz(w);
    }
    o->has_watermark = !isnull;
    restore_user(saved);
}

static void read_watermark(const Rollup *r, Outcome *o) {
    SavedUser saved = become_user(extension_owner());
    Oid types[1] = {INT4OID};
    Datum values[1] = {Int32GetDatum(r->id)};
    spi_exec("SELECT watermark FROM memoria.rollup_state WHERE rollup_id = $1", 1, types, values, NULL, true);
    bool isnull = true;
    if (SPI_processed > 0) {
        Datum w = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        if (!isnull) o->watermark = DatumGetTimestampTz(w);
    }
    o->has_watermark = !isnull;
    restore_user(saved);
}

// claimed_rows_array: the rows of the last SPI result (one composite column)
// as an array of the dirty log's row type.
static Datum claimed_rows_array(const Rollup *r) {
    Oid rowtype = get_rel_type_id(r->dirty_log);
    uint64 n = SPI_processed;
    Datum *elems = (Datum *) palloc((n + 1) * sizeof(Datum));
    for (uint64 i = 0; i < n; i++) {
        bool isnull;
        elems[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
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

// Time values as int64 (timestamps; days for dates) and back.
static int64 int_of(const Rollup *r, Datum d) {
    return r->kind == TimeKind::Date ? (int64) DatumGetDateADT(d) : DatumGetInt64(d);
}

static Datum datum_of(const Rollup *r, int64 v) {
    return r->kind == TimeKind::Date ? DateADTGetDatum((DateADT) v) : Int64GetDatum(v);
}

// claimed_buckets: the distinct buckets of the last SPI result (column 2),
// sorted, as int64 (timestamps; days for dates); returns how many.
static int claimed_buckets(const Rollup *r, int64 **out) {
    uint64 n = SPI_processed;
    int64 *b = (int64 *) palloc((n + 1) * sizeof(int64));
    for (uint64 i = 0; i < n; i++) {
        bool isnull;
        b[i] = int_of(r, SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
    }
    qsort(b, n, sizeof(int64), compare_int64);
    int distinct = 0;
    for (uint64 i = 0; i < n; i++)
        if (i == 0 || b[i] != b[distinct - 1]) b[distinct++] = b[i];
    *out = b;
    return distinct;
}


// claimed_buckets_array: those buckets as an array of the time type.
static Datum claimed_buckets_array(const Rollup *r) {
    int64 *b;
    int n = claimed_buckets(r, &b);
    Datum *elems = (Datum *) palloc((n + 1) * sizeof(Datum));
    for (int i = 0; i < n; i++) elems[i] = datum_of(r, b[i]);
    int16 typlen;
    bool typbyval;
    char typalign;
    get_typlenbyvalalign(r->time_type, &typlen, &typbyval, &typalign);
    return PointerGetDatum(construct_array(elems, n, r->time_type, typlen, typbyval, typalign));
}

// claimed_ranges: the source values the buckets of the last SPI result
// (column 2) cover, as at most MAX_SOURCE_RANGES inclusive [lo, hi] ranges:
// adjacent buckets merged, then the closest ranges until few enough.  The
// recompute reads those ranges only, each page once (bitmap OR, or one
// sequential scan when they cover most of the table).
static int claimed_ranges(const Rollup *r, Datum *lo, Datum *hi) {
    int64 *b;
    int n = claimed_buckets(r, &b);
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
// SERIALIZABLE this fails with a serialization error if another refresh
// committed after this transaction's snapshot: recomputing from that older
// snapshot could overwrite newer rows with stale ones.
static TimestampTz lock_state_row(const Rollup *r) {
    SavedUser saved = become_user(extension_owner());
    Oid types[1] = {INT4OID};
    Datum values[1] = {Int32GetDatum(r->id)};
    spi_exec(r->updated_at_attnum != 0
                 ? "SELECT scanned_through FROM memoria.rollup_state WHERE rollup_id = $1 FOR UPDATE"
                 : "SELECT NULL::timestamptz FROM memoria.rollup_state WHERE rollup_id = $1 FOR UPDATE",
             1, types, values, NULL, false);
    restore_user(saved);
    bool isnull = true;
    Datum d = SPI_processed > 0 ? SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull) : 0;
    TimestampTz scanned;
    TIMESTAMP_NOBEGIN(scanned);
    return isnull ? scanned : DatumGetTimestampTz(d);
}

static void save_scan_mark(const Rollup *r, TimestampTz scanned) {
    SavedUser saved = become_user(extension_owner());
    Oid types[2] = {INT4OID, TIMESTAMPTZOID};
    Datum values[2] = {Int32GetDatum(r->id), TimestampTzGetDatum(scanned)};
    spi_exec("UPDATE memoria.rollup_state SET scanned_through = $2 WHERE rollup_id = $1", 2, types, values, NULL,
             false);
    restore_user(saved);
}

// refresh_keys: steps 2-5 for one locked rollup (runs in the subtransaction).
static void refresh_keys(const Rollup *r, bool limited, int64 max_keys, Outcome *o) {
    TimestampTz t = watermark_candidate();
    TimestampTz scanned = lock_state_row(r);
    // updated_at mode: how far the scan below may go (computed before the
    // scan's snapshot is taken, with memoria's own search_path).
    TimestampTz horizon = 0;
    bool scan = r->updated_at_attnum != 0 && updated_at_horizon(r, false, &horizon) && horizon > scanned;
    RollupSession session = enter_rollup_session(r);
    char *log = qualified_relation_name(r->dirty_log);
    if (scan) {
        Oid types[4];
        Datum values[4];
        base_params(r, types, values);
        types[2] = types[3] = TIMESTAMPTZOID;
        values[2] = TimestampTzGetDatum(scanned);
        values[3] = TimestampTzGetDatum(horizon);
        spi_exec(scan_updated_sql(r), 4, types, values, NULL, false);
    }
    // Not read-only: that would reuse the caller's snapshot, which cannot see
    // the keys flush_pending_keys() just wrote.
    spi_exec(psprintf("SELECT EXISTS (SELECT 1 FROM %s), EXISTS (SELECT 1 FROM %s WHERE bucket IS NULL)", log, log),
             0, NULL, NULL, NULL, false);
    bool isnull;
    bool pending = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    bool rebuild = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
    bool drained = true;
    o->status = "idle";
    if (pending) {
        Oid types[4 + 2 * MAX_SOURCE_RANGES];
        Datum values[4 + 2 * MAX_SOURCE_RANGES];
        base_params(r, types, values);
        int nparams = 2;
        const char *sql;
        if (rebuild) {
            sql = recompute_window_sql(r, true, false, true);  // (-infinity, infinity): exact
            types[2] = types[3] = r->time_type;
            values[2] = infinity_of(r->time_type, false);
            values[3] = infinity_of(r->time_type, true);
            nparams = 4;
        } else {
            Oid limit_type[1] = {INT8OID};
            Datum limit_value[1] = {Int64GetDatum(max_keys)};
            spi_exec(claim_keys_sql(r, limited), limited ? 1 : 0, limit_type, limit_value, NULL, false);
            types[2] = get_array_type(get_rel_type_id(r->dirty_log));
            values[2] = claimed_rows_array(r);
            Datum lo[MAX_SOURCE_RANGES], hi[MAX_SOURCE_RANGES];
            int nranges = SPI_processed > 0 ? claimed_ranges(r, lo, hi) : 0;
            for (int i = 0; i < nranges; i++) {
                types[3 + 2 * i] = types[4 + 2 * i] = r->time_type;
                values[3 + 2 * i] = lo[i];
                values[4 + 2 * i] = hi[i];
            }
            types[3 + 2 * nranges] = get_array_type(r->time_type);
            values[3 + 2 * nranges] = claimed_buckets_array(r);
            sql = recompute_keys_sql(r, nranges);
            nparams = 4 + 2 * nranges;
        }
        spi_exec(sql, nparams, types, values, NULL, false);
        o->keys = spi_int64(1);
        o->upserted = spi_int64(2);
        o->deleted = spi_int64(3);
        o->status = "ok";
        if (!rebuild && limited && o->keys >= max_keys) {
            spi_exec(psprintf("SELECT NOT EXISTS (SELECT 1 FROM %s)", log), 0, NULL, NULL, NULL, false);
            drained = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        }
    }
    leave_rollup_session(session);
    if (scan) {
        save_scan_mark(r, horizon);
        scanned = horizon;
    }
    // In updated_at mode the rollup is exact only up to what was scanned.
    if (r->updated_at_attnum != 0 && scanned < t) t = scanned;
    record_outcome(r, o, drained, t, false);
}

// check_capture: ERROR unless the rollup's writes are being captured
// (advancing the watermark over writes no trigger saw would be a lie).  The
// state it records survives the ERROR: it runs before the subtransaction.
static char *capture_error(const Rollup *r) {
    char *problem = settle_capture(r, false);
    return problem == NULL ? NULL : psprintf("capture of rollup \"%s\" is off: %s", r->name, problem);
}

static const char *CAPTURE_HINT = "Enable the trigger again (ALTER TABLE ... ENABLE TRIGGER ...), or drop the rollup; "
                                  "once capture is back the next refresh rebuilds the rollup.";

// refresh_one: refresh one rollup; never raises except for a cancel.
static Outcome refresh_one(const Rollup *r, bool limited, int64 max_keys) {
    Outcome *o = (Outcome *) palloc0(sizeof(Outcome));
    o->started = GetCurrentTimestamp();
    if (!try_lock_rollup(r->id)) {
        o->status = "busy";
        read_watermark(r, o);
        return *o;
    }
    if (char *problem = capture_error(r)) {
        o->status = "error";
        o->error = problem;
        ereport(WARNING, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                          errmsg("memoria: refresh of rollup \"%s\" failed: %s", r->name, problem),
                          errhint("%s", CAPTURE_HINT)));
        record_outcome(r, o, false, 0, false);
        return *o;
    }
    MemoryContext caller = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;
    BeginInternalSubTransaction(NULL);
    MemoryContextSwitchTo(caller);
    PG_TRY();
    {
        refresh_keys(r, limited, max_keys, o);
        ReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(caller);
        CurrentResourceOwner = owner;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller);
        ErrorData *e = CopyErrorData();
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(caller);
        CurrentResourceOwner = owner;
        if (e->sqlerrcode == ERRCODE_QUERY_CANCELED) ReThrowError(e);
        o->status = "error";
        o->keys = o->upserted = o->deleted = 0;
        o->error = e->message;
        ereport(WARNING, (errcode(e->sqlerrcode), errmsg("memoria: refresh of rollup \"%s\" failed: %s", r->name,
                                                         e->message)));
        record_outcome(r, o, false, 0, false);
    }
    PG_END_TRY();
    return *o;
}

static void put_outcome(ReturnSetInfo *rsinfo, const Rollup *r, const Outcome &o) {
    Datum values[8];
    bool nulls[8] = {false, false, false, false, false, !o.has_watermark, false, o.error == NULL};
    values[0] = CStringGetTextDatum(r->name);
    values[1] = CStringGetTextDatum(o.status);
    values[2] = Int64GetDatum(o.keys);
    values[3] = Int64GetDatum(o.upserted);
    values[4] = Int64GetDatum(o.deleted);
    values[5] = TimestampTzGetDatum(o.watermark);
    values[6] = IntervalPGetDatum(elapsed_since(o.started));
    values[7] = o.error ? CStringGetTextDatum(o.error) : (Datum) 0;
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

// window_buckets: the first and last bucket overlapping [ws, we).  For
// timestamp and date sources the window is read in the session's time zone,
// which is how the literal '2026-01-01' became a timestamptz.
// With exact, also whether [first, last] has exact bounds (window_bounds_exact).
static void window_buckets(const Rollup *r, TimestampTz ws, TimestampTz we, Datum *first, Datum *last,
                           bool *exact = NULL) {
    BucketSpec spec;
    bucket_spec_init(&spec, r->kind, r->width_usecs, r->kind == TimeKind::Timestamptz ? lookup_time_zone(r->time_zone) : NULL);
    TimestampTz we_last = TIMESTAMP_NOT_FINITE(we) ? we : we - 1;
    TimestampTz ends[2] = {ws, we_last};
    Datum *out[2] = {first, last};
    for (int i = 0; i < 2; i++) {
        TimestampTz v = ends[i];
        if (TIMESTAMP_NOT_FINITE(v)) {
            *out[i] = infinity_of(r->time_type, TIMESTAMP_IS_NOEND(v));
            continue;
        }
        Datum d = TimestampTzGetDatum(v);
        if (r->kind == TimeKind::Timestamp) d = DirectFunctionCall1(timestamptz_timestamp, d);
        if (r->kind == TimeKind::Date) d = DirectFunctionCall1(timestamptz_date, d);
        *out[i] = bucket_of(&spec, d);
    }
    if (exact != NULL) *exact = window_bounds_exact(&spec, *first, *last);
}

static void check_window(FunctionCallInfo fcinfo, TimestampTz *ws, TimestampTz *we) {
    if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("window_start and window_end must not be NULL"),
                        errhint("Use '-infinity' and 'infinity' for an unbounded window.")));
    *ws = PG_GETARG_TIMESTAMPTZ(1);
    *we = PG_GETARG_TIMESTAMPTZ(2);
    if (*ws >= *we)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("window_start must be earlier than window_end"),
                        errhint("The window is half-open: [window_start, window_end).")));
}

static const char *name_arg(FunctionCallInfo fcinfo) {
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("name must not be NULL")));
    return text_to_cstring(PG_GETARG_TEXT_PP(0));
}

}  // namespace memoria

using namespace memoria;

MEMORIA_FUNCTION(memoria_refresh) {
    bool limited = !PG_ARGISNULL(1);
    int64 max_keys = limited ? PG_GETARG_INT64(1) : 0;
    if (limited && max_keys < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("max_keys must not be negative"),
                        errhint("Use NULL to refresh every dirty key.")));
    List *rollups = PG_ARGISNULL(0) ? load_rollups() : list_make1(load_rollup(text_to_cstring(PG_GETARG_TEXT_PP(0))));
    flush_pending_keys();
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    SPI_connect();
    ListCell *lc;
    foreach (lc, rollups) {
        const Rollup *r = (const Rollup *) lfirst(lc);
        Outcome o = refresh_one(r, limited, max_keys);
        put_outcome(rsinfo, r, o);
    }
    SPI_finish();
    return (Datum) 0;
}

MEMORIA_FUNCTION(memoria_refresh_window) {
    const char *name = name_arg(fcinfo);
    TimestampTz ws, we;
    check_window(fcinfo, &ws, &we);
    Rollup *r = load_rollup(name);
    Datum first, last;
    bool exact;
    window_buckets(r, ws, we, &first, &last, &exact);
    bool whole = TIMESTAMP_IS_NOBEGIN(ws) && TIMESTAMP_IS_NOEND(we);
    // A whole-window refresh empties the log, this transaction's rows too.
    flush_pending_keys();

    Outcome o;
    memset(&o, 0, sizeof o);
    o.started = GetCurrentTimestamp();
    // Wait for (do not skip) a running refresh: two recomputes of a key from
    // different snapshots must not land out of order.
    lock_rollup(r->id);
    if (char *problem = capture_error(r))
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE), errmsg("%s", problem),
                        errhint("%s", CAPTURE_HINT)));
    TimestampTz t = watermark_candidate();
    SPI_connect();
    lock_state_row(r);
    RollupSession session = enter_rollup_session(r);
    Oid types[4];
    Datum values[4];
    base_params(r, types, values);
    types[2] = types[3] = r->time_type;
    values[2] = first;
    values[3] = last;
    // Under the rollup's lock nobody else writes its rows: if the window is
    // empty now it stays so until this statement runs.
    spi_exec(window_is_empty_sql(r), 4, types, values, NULL, false);
    bool isnull;
    bool empty = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    spi_exec(recompute_window_sql(r, whole, empty, exact), 4, types, values, NULL, false);
    o.keys = spi_int64(1);
    o.upserted = spi_int64(2);
    o.deleted = spi_int64(3);
    o.status = "ok";
    // A window that holds every source row completes a backfill.
    bool covers_all = whole;
    if (!covers_all) {
        const char *tname = format_type_be(r->time_type);
        spi_exec(psprintf("SELECT NOT EXISTS (SELECT 1 FROM %s WHERE %s < memoria._bucket_lo($3::%s, $1, $2) "
                          "OR %s > memoria._bucket_hi($4::%s, $1, $2))",
                          qualified_relation_name(r->source), column_name(r->source, r->time_attnum), tname,
                          column_name(r->source, r->time_attnum), tname),
                 4, types, values, NULL, true);
        bool isnull;
        covers_all = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    }
    leave_rollup_session(session);
    record_outcome(r, &o, covers_all, t, covers_all);
    SPI_finish();

    TupleDesc desc;
    if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "return type must be a row type");
    desc = BlessTupleDesc(desc);
    Datum out[8] = {CStringGetTextDatum(r->name), CStringGetTextDatum(o.status), Int64GetDatum(o.keys),
                    Int64GetDatum(o.upserted), Int64GetDatum(o.deleted), TimestampTzGetDatum(o.watermark),
                    IntervalPGetDatum(elapsed_since(o.started)), (Datum) 0};
    bool nulls[8] = {false, false, false, false, false, !o.has_watermark, false, true};
    return HeapTupleGetDatum(heap_form_tuple(desc, out, nulls));
}

MEMORIA_FUNCTION(memoria_verify) {
    const char *name = name_arg(fcinfo);
    TimestampTz ws, we;
    check_window(fcinfo, &ws, &we);
    Rollup *r = load_rollup(name);
    Datum first, last;
    window_buckets(r, ws, we, &first, &last);
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    SPI_connect();
    RollupSession session = enter_rollup_session(r);
    Oid types[4];
    Datum values[4];
    base_params(r, types, values);
    types[2] = types[3] = r->time_type;
    values[2] = first;
    values[3] = last;
    spi_exec(verify_sql(r), 4, types, values, NULL, true);
    for (uint64 i = 0; i < SPI_processed; i++) {
        Datum v[4];
        bool n[4];
        heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, v, n);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
    }
    leave_rollup_session(session);
    SPI_finish();
    return (Datum) 0;
}

// memoria._pending_keys(id): distinct keys in the dirty log, NULL if the
// caller may not see the rollup.  Counted as the rollup's owner: telling
// keys apart runs their types' equality, which is the owner's code to run.
MEMORIA_FUNCTION(memoria_pending_keys) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL || !can_manage(r->owner) || get_rel_name(r->dirty_log) == NULL) PG_RETURN_NULL();
    SPI_connect();
    RollupSession session = enter_rollup_session(r);
    spi_exec(pending_keys_sql(r), 0, NULL, NULL, NULL, true);
    int64 n = spi_int64(1);
    leave_rollup_session(session);
    SPI_finish();
    PG_RETURN_INT64(n);
}

// memoria._source_range(name): first and last value of the source's time
// column, as timestamptz (timestamp and date read in the session's zone).
MEMORIA_FUNCTION(memoria_source_range) {
    Rollup *r = load_rollup(text_to_cstring(PG_GETARG_TEXT_PP(0)));
    SPI_connect();
    RollupSession session = enter_rollup_session(r);
    char *t = column_name(r->source, r->time_attnum);
    spi_exec(psprintf("SELECT min(%s), max(%s) FROM %s", t, t, qualified_relation_name(r->source)), 0, NULL, NULL,
             NULL, true);
    bool lo_null, hi_null;
    Datum lo = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &lo_null);
    Datum hi = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &hi_null);
    leave_rollup_session(session);
    SPI_finish();
    Datum out[2] = {lo, hi};
    for (int i = 0; i < 2; i++) {
        if ((i == 0 ? lo_null : hi_null)) continue;
        if (r->kind == TimeKind::Timestamp) out[i] = DirectFunctionCall1(timestamp_timestamptz, out[i]);
        if (r->kind == TimeKind::Date) out[i] = DirectFunctionCall1(date_timestamptz, out[i]);
    }
    TupleDesc desc;
    if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "return type must be a row type");
    bool nulls[2] = {lo_null, hi_null};
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), out, nulls));
}

// memoria._backfill_state(name, next, progress, finished, started, complete):
// with finished NULL, only reads the resume point; otherwise records progress,
// and on finishing clears it -- marking the rollup backfilled, with the
// watermark at the backfill's start, when the whole source was covered.
MEMORIA_FUNCTION(memoria_backfill_state) {
    if (PG_ARGISNULL(0)) ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("name must not be NULL")));
    Rollup *r = load_rollup(text_to_cstring(PG_GETARG_TEXT_PP(0)));
    SPI_connect();
    SavedUser saved = become_user(extension_owner());
    Oid types[6] = {INT4OID, TIMESTAMPTZOID, FLOAT4OID, BOOLOID, TIMESTAMPTZOID, BOOLOID};
    Datum values[6];
    char nulls[6];
    values[0] = Int32GetDatum(r->id);
    nulls[0] = ' ';
    for (int i = 1; i < 6; i++) {
        values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
        nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
    }
    // The watermark a backfill sets is when it started: never in the future,
    // whatever a caller passes.
    if (!PG_ARGISNULL(4))
        values[4] = TimestampTzGetDatum(Min(PG_GETARG_TIMESTAMPTZ(4), GetCurrentTransactionStartTimestamp()));
    if (!PG_ARGISNULL(3)) {
        // In updated_at mode the watermark cannot pass what was scanned.
        spi_exec(psprintf("UPDATE memoria.rollup_state SET "
                          "backfill_next = CASE WHEN $4 THEN NULL ELSE $2 END, "
                          "backfill_progress = CASE WHEN $4 THEN NULL ELSE $3 END, "
                          "backfill_started = CASE WHEN $4 THEN NULL ELSE $5 END, "
                          "needs_backfill = needs_backfill AND NOT ($4 AND $6), "
                          "watermark = CASE WHEN $4 AND $6 THEN greatest(watermark, %s) ELSE watermark END "
                          "WHERE rollup_id = $1",
                          r->updated_at_attnum != 0 ? "least($5, scanned_through)" : "$5"),
                 6, types, values, nulls, false);
    }
    spi_exec("SELECT backfill_next, backfill_started FROM memoria.rollup_state WHERE rollup_id = $1", 1, types,
             values, nulls, false);
    bool n1 = true, n2 = true;
    Datum out[2] = {0, 0};
    if (SPI_processed > 0) {
        out[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &n1);
        out[1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &n2);
    }
    restore_user(saved);
    SPI_finish();
    TupleDesc desc;
    if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "return type must be a row type");
    bool nulls_out[2] = {n1, n2};
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), out, nulls_out));
}

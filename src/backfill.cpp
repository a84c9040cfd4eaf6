// backfill.cpp: the C helpers of memoria.backfill (a plpgsql procedure, since
// it commits between slices): the source's time range, and the progress
// kept in memoria.rollup_state so that a cancelled backfill resumes.
#include "guard.hpp"
#include "statements.hpp"
#include "args.hpp"

using namespace memoria;

// memoria._source_range(name): first and last value of the source's time
// column, as timestamptz (timestamp and date read in the session's zone).
MEMORIA_FUNCTION(memoria_source_range) {
    Rollup *r = load_rollup(name_arg(fcinfo));
    SPI_connect();
    RollupSession session = enter_rollup_session(r);
    spi_exec(source_range_sql(r), 0, NULL, NULL, NULL, true);
    bool nulls[2];
    Datum out[2];
    for (int i = 0; i < 2; i++) out[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &nulls[i]);
    leave_rollup_session(session);
    SPI_finish();  // the values are by-value time types: they outlive SPI's memory
    for (int i = 0; i < 2; i++) {
        if (nulls[i]) continue;
        if (r->kind == TimeKind::Timestamp) out[i] = DirectFunctionCall1(timestamp_timestamptz, out[i]);
        if (r->kind == TimeKind::Date) out[i] = DirectFunctionCall1(date_timestamptz, out[i]);
    }
    TupleDesc desc;
    if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "return type must be a row type");
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), out, nulls));
}

// memoria._backfill_state(name, next, progress, finished, started, complete):
// with finished NULL, only reads the resume point; otherwise records
// progress (catalog.hpp, record_backfill).
MEMORIA_FUNCTION(memoria_backfill_state) {
    Rollup *r = load_rollup(name_arg(fcinfo));
    BackfillStep step;
    memset(&step, 0, sizeof step);
    step.has_next = !PG_ARGISNULL(1);
    if (step.has_next) step.next = PG_GETARG_TIMESTAMPTZ(1);
    step.has_progress = !PG_ARGISNULL(2);
    if (step.has_progress) step.progress = PG_GETARG_FLOAT4(2);
    step.has_finished = !PG_ARGISNULL(3);
    if (step.has_finished) step.finished = PG_GETARG_BOOL(3);
    // The watermark a backfill sets is when it started: never in the future,
    // whatever a caller passes.
    step.has_started = !PG_ARGISNULL(4);
    if (step.has_started) step.started = Min(PG_GETARG_TIMESTAMPTZ(4), GetCurrentTransactionStartTimestamp());
    step.complete = !PG_ARGISNULL(5) && PG_GETARG_BOOL(5);
    Datum out[2];
    bool has[2];
    TimestampTz resume_at = 0, resume_started = 0;
    record_backfill(r, &step, &has[0], &resume_at, &has[1], &resume_started);
    out[0] = TimestampTzGetDatum(resume_at);
    out[1] = TimestampTzGetDatum(resume_started);
    bool nulls[2] = {!has[0], !has[1]};
    TupleDesc desc;
    if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "return type must be a row type");
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), out, nulls));
}

// memoria_internal.source_rows(name): the planner's estimate of the rows in
// the rollup's source (its fact table and partitions): backfill sizes its
// slices by it.
MEMORIA_FUNCTION(memoria_source_rows) {
    Rollup *r = load_rollup(name_arg(fcinfo));
    double rows = 0;
    ListCell *lc;
    foreach (lc, find_all_inheritors(OidIsValid(r->fact) ? r->fact : r->source, NoLock, NULL)) {
        HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(lfirst_oid(lc)));
        if (!HeapTupleIsValid(tup)) continue;
        Form_pg_class c = (Form_pg_class) GETSTRUCT(tup);
        if (c->relkind == RELKIND_RELATION && c->reltuples > 0) rows += c->reltuples;
        ReleaseSysCache(tup);
    }
    PG_RETURN_FLOAT8(rows);
}

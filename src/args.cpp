// args.cpp: arguments of memoria's SQL functions (args.hpp).
#include "args.hpp"

namespace memoria {

void arg_error(int code, const char *msg, const char *hint) {
    ereport(ERROR, (errcode(code), errmsg("%s", msg), hint ? errhint("%s", hint) : 0));
    pg_unreachable();
}

const char *name_arg(FunctionCallInfo fcinfo) {
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("name must not be NULL")));
    return text_to_cstring(PG_GETARG_TEXT_PP(0));
}

void window_args(FunctionCallInfo fcinfo, TimestampTz *ws, TimestampTz *we) {
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

Datum infinity_of(Oid type, bool upper) {
    if (type == DATEOID) {
        DateADT d;
        if (upper) DATE_NOEND(d); else DATE_NOBEGIN(d);
        return DateADTGetDatum(d);
    }
    Timestamp t;
    if (upper) TIMESTAMP_NOEND(t); else TIMESTAMP_NOBEGIN(t);
    return TimestampGetDatum(t);
}

void window_buckets(const Rollup *r, TimestampTz ws, TimestampTz we, Datum *first, Datum *last, bool *exact) {
    BucketSpec spec;
    bucket_spec_init(&spec, r->kind, r->width_usecs,
                     r->kind == TimeKind::Timestamptz ? lookup_time_zone(r->time_zone) : NULL);
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

bool frozen_before(const Rollup *r, Datum *first_open) {
    if (!r->has_freeze) return false;
    // Counted back from the watermark when it is older than now: a key
    // still pending was written after it, maybe while its bucket was not
    // frozen yet, and must then be applied.  (No watermark: nothing was
    // ever applied, nothing is frozen.)
    TimestampTz from = GetCurrentTransactionStartTimestamp(), watermark;
    if (!read_watermark(r, &watermark)) return false;
    if (watermark < from) from = watermark;
    pg_tz *tz = lookup_time_zone(r->time_zone);
    // now - freeze_after: months and days are calendar ones in the rollup's
    // zone (timestamptz arithmetic reads the session's zone).
    pg_tz *session = session_timezone;
    Datum cut;
    session_timezone = tz;
    PG_TRY();
    {
        cut = DirectFunctionCall2(timestamptz_mi_interval, TimestampTzGetDatum(from),
                                  IntervalPGetDatum(&r->freeze_after));
    }
    PG_FINALLY();
    { session_timezone = session; }
    PG_END_TRY();
    BucketSpec spec;
    bucket_spec_init(&spec, r->kind, r->width_usecs, r->kind == TimeKind::Timestamptz ? tz : NULL);
    if (r->kind != TimeKind::Timestamptz) {
        // The local time there, for sources without a zone.
        cut = DirectFunctionCall2(timestamptz_zone, CStringGetTextDatum(r->time_zone), cut);
        if (r->kind == TimeKind::Date) cut = DirectFunctionCall1(timestamp_date, cut);
    }
    *first_open = bucket_of(&spec, cut);
    return true;
}

bool time_less(const Rollup *r, Datum a, Datum b) {
    return r->kind == TimeKind::Date ? DatumGetDateADT(a) < DatumGetDateADT(b)
                                     : DatumGetTimestamp(a) < DatumGetTimestamp(b);
}

bool clamp_to_unfrozen(const Rollup *r, Datum *first, Datum last) {
    Datum open;
    if (!frozen_before(r, &open)) return true;
    return clamp_to(r, open, first, last);
}

bool clamp_to(const Rollup *r, Datum open, Datum *first, Datum last) {
    if (time_less(r, *first, open)) *first = open;
    return !time_less(r, last, *first);
}

Interval *elapsed_since(TimestampTz started) {
    return DatumGetIntervalP(DirectFunctionCall2(timestamp_mi, TimestampTzGetDatum(GetCurrentTimestamp()),
                                                 TimestampTzGetDatum(started)));
}

}  // namespace memoria

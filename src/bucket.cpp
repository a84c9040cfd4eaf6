// bucket.cpp: bucket arithmetic (see bucket.hpp) and the SQL functions
// memoria.bucket(), memoria._bucket_lo() and memoria._bucket_hi().
#include "bucket.hpp"
#include "guard.hpp"

namespace memoria {

// Buckets are aligned to Monday 2000-01-03 00:00 (PostgreSQL's epoch is 2000-01-01).
static const int64 ORIGIN_USECS = 2 * USECS_PER_DAY;
static const int32 ORIGIN_DAYS = 2;
// Offsets are sampled this often when looking for DST changes near a bucket.
static const int64 OFFSET_SAMPLE_USECS = 15 * USECS_PER_MINUTE;

static int64 floor_div(int64 a, int64 b) {
    int64 q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64 floor_to_bucket(int64 local, int64 width) {
    return ORIGIN_USECS + floor_div(local - ORIGIN_USECS, width) * width;
}

// Calendar buckets (months, quarters, years): a width code below zero is
// minus the number of months; they are aligned to January 2000, so quarters
// start in January, April, July and October, and years on January 1.
static bool is_calendar(int64 width) { return width < 0; }
static int64 months_of(int64 width) { return -width; }

// month_index / month_start: local time <-> months since January 2000 (the
// first of the month, 00:00 local).
static int64 month_index(int64 local) {
    struct pg_tm tm;
    fsec_t fsec;
    if (timestamp2tm(local, NULL, &tm, &fsec, NULL, NULL) != 0)
        ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE), errmsg("timestamp out of range")));
    return (int64) (tm.tm_year - 2000) * 12 + (tm.tm_mon - 1);
}

static int64 month_start(int64 index) {
    struct pg_tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = 2000 + (int) floor_div(index, 12);
    tm.tm_mon = 1 + (int) (index - floor_div(index, 12) * 12);
    tm.tm_mday = 1;
    Timestamp result;
    if (tm2timestamp(&tm, 0, NULL, &result) != 0)
        ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE), errmsg("timestamp out of range")));
    return result;
}

// local_floor: the local start of the bucket of local time `local`;
// local_end: the local start of the next bucket.
static int64 local_floor(int64 local, int64 width) {
    if (!is_calendar(width)) return floor_to_bucket(local, width);
    int64 m = months_of(width);
    return month_start(floor_div(month_index(local), m) * m);
}

static int64 local_end(int64 blocal, int64 width) {
    if (!is_calendar(width)) return blocal + width;
    return month_start(month_index(blocal) + months_of(width));
}

// A stand-in width for calendar buckets where only a rough one is needed
// (the cache's slot of a value).
static int64 rough_width(int64 width) {
    return is_calendar(width) ? months_of(width) * 28 * USECS_PER_DAY : width;
}

bool time_kind_of(Oid type, TimeKind *kind) {
    switch (type) {
        case TIMESTAMPTZOID: *kind = TimeKind::Timestamptz; return true;
        case TIMESTAMPOID: *kind = TimeKind::Timestamp; return true;
        case DATEOID: *kind = TimeKind::Date; return true;
        default: return false;
    }
}

void bucket_spec_init(BucketSpec *spec, TimeKind kind, int64 width_usecs, pg_tz *tz) {
    spec->kind = kind;
    spec->width_usecs = width_usecs;
    spec->tz = tz;
    memset(spec->cache, 0, sizeof spec->cache);
}

int64 check_bucket_width(const Interval *w, TimeKind kind) {
    const char *hint = "Use a whole number of days (e.g. '1 day', '1 week'), an interval that divides a day "
                       "(e.g. '1 hour', '15 minutes'), or months: '1 month', '3 months', '1 year'.";
    if (w->month != 0) {
        if (w->month < 0 || w->day != 0 || w->time != 0 || (12 % w->month != 0 && w->month % 12 != 0) ||
            w->month > 12 * 100)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("bucket in months must be a divisor of a year (1, 2, 3, 4 or 6 months) or a whole "
                                   "number of years, with no days or time"),
                            errhint("%s", hint)));
        return bucket_width_code(w);
    }
    if (w->day < 0 || w->time < 0 || (w->day == 0 && w->time == 0))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("bucket must be a positive interval"), errhint("%s", hint)));
    if (w->day > 0 && w->time != 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("bucket must be a whole number of days or divide a day"),
                        errhint("%s", hint)));
    if (w->day == 0 && USECS_PER_DAY % w->time != 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("bucket must divide a day"), errhint("%s", hint)));
    if (w->day > 100000)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("bucket must be at most 100000 days"), errhint("%s", hint)));
    int64 width = (int64) w->day * USECS_PER_DAY + w->time;
    if (kind == TimeKind::Date && width % USECS_PER_DAY != 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("bucket must be a whole number of days for a date column"),
                        errhint("Use '1 day' or a multiple of it.")));
    return width;
}

int64 bucket_width_code(const Interval *w) {
    if (w->month != 0) return -(int64) w->month;
    return (int64) w->day * USECS_PER_DAY + w->time;
}

pg_tz *lookup_time_zone(const char *name) {
    pg_tz *tz = pg_tzset(name);
    if (tz == NULL)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("time_zone \"%s\" is not a known time zone", name),
                        errhint("Use a name from pg_timezone_names, such as 'UTC' or 'Europe/Paris'.")));
    return tz;
}

// local_of: the local wall-clock time of instant ts in tz; *gmtoff gets the
// zone's offset in seconds east of UTC.  false if ts is out of range.
static bool local_of(int64 ts, pg_tz *tz, int64 *local, long *gmtoff) {
    struct pg_tm tm;
    fsec_t fsec;
    int tzoff;
    if (timestamp2tm(ts, &tzoff, &tm, &fsec, NULL, tz) != 0) return false;
    *gmtoff = tm.tm_gmtoff;
    *local = ts + (int64) tm.tm_gmtoff * USECS_PER_SEC;
    return true;
}

// utc_of: the instant local wall-clock time `local` names in tz, resolving
// gaps and overlaps as PostgreSQL's `timestamp AT TIME ZONE` does.
static int64 utc_of(int64 local, pg_tz *tz) {
    struct pg_tm tm;
    fsec_t fsec;
    if (timestamp2tm(local, NULL, &tm, &fsec, NULL, NULL) != 0)
        ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE), errmsg("timestamp out of range")));
    int tzoff = DetermineTimeZoneOffset(&tm, tz);
    Timestamp result;
    if (tm2timestamp(&tm, fsec, &tzoff, &result) != 0)
        ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE), errmsg("timestamp out of range")));
    return result;
}

static int64 bucket_of_timestamptz(BucketSpec *spec, int64 ts) {
    if (TIMESTAMP_NOT_FINITE(ts)) return ts;
    BucketSpec::CachedBucket *c =
        &spec->cache[(uint64) floor_div(ts, rough_width(spec->width_usecs)) % lengthof(spec->cache)];
    if (ts >= c->lo && ts < c->hi) return c->bucket;
    int64 local;
    long gmtoff;
    if (!local_of(ts, spec->tz, &local, &gmtoff))
        ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE), errmsg("timestamp out of range")));
    int64 blocal = local_floor(local, spec->width_usecs);
    int64 b = utc_of(blocal, spec->tz);
    // Cache the bucket's UTC range if one offset holds over all of it.
    int64 lo = blocal - (int64) gmtoff * USECS_PER_SEC;
    int64 hi = local_end(blocal, spec->width_usecs) - (int64) gmtoff * USECS_PER_SEC;
    int64 l2;
    long off_lo, off_mid, off_hi;
    if (local_of(lo, spec->tz, &l2, &off_lo) && local_of(lo + (hi - lo) / 2, spec->tz, &l2, &off_mid) &&
        local_of(hi - 1, spec->tz, &l2, &off_hi) && off_lo == gmtoff && off_mid == gmtoff &&
        off_hi == gmtoff) {
        c->lo = lo;
        c->hi = hi;
        c->bucket = b;
    }
    return b;
}

Datum bucket_of(BucketSpec *spec, Datum value) {
    switch (spec->kind) {
        case TimeKind::Timestamptz:
            return TimestampTzGetDatum(bucket_of_timestamptz(spec, DatumGetTimestampTz(value)));
        case TimeKind::Timestamp: {
            Timestamp ts = DatumGetTimestamp(value);
            if (TIMESTAMP_NOT_FINITE(ts)) return value;
            return TimestampGetDatum(local_floor(ts, spec->width_usecs));
        }
        case TimeKind::Date: {
            DateADT d = DatumGetDateADT(value);
            if (DATE_NOT_FINITE(d)) return value;
            if (is_calendar(spec->width_usecs))
                return DateADTGetDatum(
                    (DateADT) (local_floor((int64) d * USECS_PER_DAY, spec->width_usecs) / USECS_PER_DAY));
            int64 days = spec->width_usecs / USECS_PER_DAY;
            return DateADTGetDatum((DateADT) (ORIGIN_DAYS + floor_div((int64) d - ORIGIN_DAYS, days) * days));
        }
    }
    pg_unreachable();
}

// offset_range: widen [*min_off, *max_off] to every offset of tz sampled in
// [from, to]; false if some instant there is out of range (not sampled).
static bool offset_range(pg_tz *tz, int64 from, int64 to, long *min_off, long *max_off) {
    bool complete = true;
    for (int64 t = from; t <= to; t += OFFSET_SAMPLE_USECS) {
        int64 local;
        long off;
        if (!local_of(t, tz, &local, &off)) {
            complete = false;
            continue;
        }
        *min_off = Min(*min_off, off);
        *max_off = Max(*max_off, off);
    }
    return complete;
}

static int64 clamp_timestamp(int64 ts) {
    if (ts < MIN_TIMESTAMP) return DT_NOBEGIN;
    if (ts >= END_TIMESTAMP) return DT_NOEND;
    return ts;
}

// bucket_bounds_exactly: bucket_bounds, and whether the bounds are exact
// (the zone's offset is the same all around the bucket; otherwise they are a
// superset by up to the offset change).
static void bucket_bounds_exactly(BucketSpec *spec, Datum b, Datum *lo, Datum *hi, bool *exact) {
    *exact = true;
    switch (spec->kind) {
        case TimeKind::Timestamptz: {
            int64 ts = DatumGetTimestampTz(b);
            if (TIMESTAMP_NOT_FINITE(ts)) { *lo = *hi = b; return; }
            int64 local;
            long gmtoff;
            if (!local_of(ts, spec->tz, &local, &gmtoff)) { *lo = *hi = b; return; }
            int64 blocal = local_floor(local, spec->width_usecs);
            int64 elocal = local_end(blocal, spec->width_usecs);
            // bucket_of never decreases with time, so the earliest instant of
            // the bucket is near its start and the latest near its end: the
            // offsets in force around each edge bound them.
            long start_min = gmtoff, start_max = gmtoff, end_min, end_max;
            int64 end_instant = elocal - (int64) gmtoff * USECS_PER_SEC;
            if (!local_of(end_instant, spec->tz, &local, &end_min)) end_min = gmtoff;
            end_max = end_min;
            bool complete = offset_range(spec->tz, blocal - 30 * USECS_PER_HOUR, blocal + 30 * USECS_PER_HOUR,
                                         &start_min, &start_max);
            complete = offset_range(spec->tz, elocal - 30 * USECS_PER_HOUR, elocal + 30 * USECS_PER_HOUR, &end_min,
                                    &end_max) && complete;
            *exact = complete && start_min == start_max && end_min == end_max;
            *lo = TimestampTzGetDatum(clamp_timestamp(blocal - (int64) start_max * USECS_PER_SEC));
            *hi = TimestampTzGetDatum(clamp_timestamp(elocal - (int64) end_min * USECS_PER_SEC - 1));
            return;
        }
        case TimeKind::Timestamp: {
            int64 ts = DatumGetTimestamp(b);
            if (TIMESTAMP_NOT_FINITE(ts)) { *lo = *hi = b; return; }
            *lo = b;
            *hi = TimestampGetDatum(clamp_timestamp(local_end(ts, spec->width_usecs) - 1));
            return;
        }
        case TimeKind::Date: {
            DateADT d = DatumGetDateADT(b);
            if (DATE_NOT_FINITE(d)) { *lo = *hi = b; return; }
            *lo = b;
            int64 end = local_end((int64) d * USECS_PER_DAY, spec->width_usecs);
            *hi = DateADTGetDatum((DateADT) (end / USECS_PER_DAY - 1));
            return;
        }
    }
}

void bucket_bounds(BucketSpec *spec, Datum b, Datum *lo, Datum *hi) {
    bool exact;
    bucket_bounds_exactly(spec, b, lo, hi, &exact);
}

bool window_bounds_exact(BucketSpec *spec, Datum first, Datum last) {
    // The bounds of the first and last bucket are their exact edges when the
    // offset is constant around each; bucket_of never decreases with time,
    // so every value between those edges is in a bucket in [first, last].
    // Otherwise the range reaches into the neighbouring buckets, and each row
    // must be checked.
    Datum lo, hi;
    bool first_exact, last_exact;
    bucket_bounds_exactly(spec, first, &lo, &hi, &first_exact);
    bucket_bounds_exactly(spec, last, &lo, &hi, &last_exact);
    return first_exact && last_exact;
}

// ---------------------------------------------------------------------------
// SQL functions.  Each keeps its BucketSpec in fn_extra between rows.
// ---------------------------------------------------------------------------

struct CachedSpec {
    Interval width;
    char tz_name[TZ_STRLEN_MAX + 1];
    BucketSpec spec;
};

static BucketSpec *spec_for_call(FunctionCallInfo fcinfo, TimeKind kind) {
    Interval *width = PG_GETARG_INTERVAL_P(1);
    text *tz_text = PG_GETARG_TEXT_PP(2);
    CachedSpec *c = (CachedSpec *) fcinfo->flinfo->fn_extra;
    // Fast path (every row of a statement): same width, same zone bytes.
    size_t tz_len = VARSIZE_ANY_EXHDR(tz_text);
    if (c != NULL && memcmp(&c->width, width, sizeof(Interval)) == 0 && tz_len < sizeof c->tz_name &&
        c->tz_name[tz_len] == '\0' && memcmp(c->tz_name, VARDATA_ANY(tz_text), tz_len) == 0)
        return &c->spec;
    char tz_name[TZ_STRLEN_MAX + 1];
    text_to_cstring_buffer(tz_text, tz_name, sizeof tz_name);
    int64 w = check_bucket_width(width, kind);
    pg_tz *tz = kind == TimeKind::Timestamptz ? lookup_time_zone(tz_name) : NULL;
    if (c == NULL) {
        c = (CachedSpec *) MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CachedSpec));
        fcinfo->flinfo->fn_extra = c;
    }
    c->width = *width;
    strlcpy(c->tz_name, tz_name, sizeof c->tz_name);
    bucket_spec_init(&c->spec, kind, w, tz);
    return &c->spec;
}

}  // namespace memoria

using namespace memoria;

MEMORIA_FUNCTION(memoria_bucket_timestamptz) {
    return bucket_of(spec_for_call(fcinfo, TimeKind::Timestamptz), PG_GETARG_DATUM(0));
}
MEMORIA_FUNCTION(memoria_bucket_timestamp) {
    return bucket_of(spec_for_call(fcinfo, TimeKind::Timestamp), PG_GETARG_DATUM(0));
}
MEMORIA_FUNCTION(memoria_bucket_date) {
    return bucket_of(spec_for_call(fcinfo, TimeKind::Date), PG_GETARG_DATUM(0));
}

static Datum bound(FunctionCallInfo fcinfo, TimeKind kind, bool upper) {
    Datum lo, hi;
    bucket_bounds(spec_for_call(fcinfo, kind), PG_GETARG_DATUM(0), &lo, &hi);
    return upper ? hi : lo;
}
MEMORIA_FUNCTION(memoria_bucket_lo_timestamptz) { return bound(fcinfo, TimeKind::Timestamptz, false); }
MEMORIA_FUNCTION(memoria_bucket_hi_timestamptz) { return bound(fcinfo, TimeKind::Timestamptz, true); }
MEMORIA_FUNCTION(memoria_bucket_lo_timestamp) { return bound(fcinfo, TimeKind::Timestamp, false); }
MEMORIA_FUNCTION(memoria_bucket_hi_timestamp) { return bound(fcinfo, TimeKind::Timestamp, true); }
MEMORIA_FUNCTION(memoria_bucket_lo_date) { return bound(fcinfo, TimeKind::Date, false); }
MEMORIA_FUNCTION(memoria_bucket_hi_date) { return bound(fcinfo, TimeKind::Date, true); }

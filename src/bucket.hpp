// bucket.hpp: which bucket a time value falls in, and which time values fall
// in a bucket.  The capture trigger and every SQL statement memoria runs use
// this one implementation, so the two can never disagree about a boundary.
//
// A bucket of width W is a half-open range [start, start + W) of *local* time
// in the rollup's time zone, with buckets aligned to local midnight of Monday
// 2000-01-03 (so 7-day buckets, '1 week', are ISO weeks).  W divides a day,
// is a whole number of days, or is a calendar width: months dividing a year
// or whole years, from local midnight of the first of a month (aligned to
// January 2000: quarters start in January, April, July, October).  For timestamptz the bucket is reported as the instant
// its local start maps to; timestamp and date sources have no zone.
#pragma once
#include "pg.hpp"

namespace memoria {

enum class TimeKind { Timestamptz, Timestamp, Date };

struct BucketSpec {
    TimeKind kind;
    int64 width_usecs;  // days * USECS_PER_DAY + time; < 0: minus the months
    pg_tz *tz;          // used for Timestamptz only
    // Recently computed timestamptz buckets, direct-mapped by the value's
    // UTC-aligned bucket number: every value in [lo, hi) is in `bucket`
    // (lo == hi: empty).  Rows of a statement usually span a few buckets.
    struct CachedBucket {
        int64 lo, hi, bucket;
    } cache[64];
};

// time_kind_of: the TimeKind of a column type; false when memoria cannot bucket it.
bool time_kind_of(Oid type, TimeKind *kind);

// bucket_spec_init: fill spec; validates nothing (see check_bucket_width).
void bucket_spec_init(BucketSpec *spec, TimeKind kind, int64 width_usecs, pg_tz *tz);

// check_bucket_width: ERROR unless the interval is a usable width for kind;
// returns its width code (bucket_width_code).
int64 check_bucket_width(const Interval *width, TimeKind kind);
// bucket_width_code: what BucketSpec::width_usecs holds for a bucket
// interval: microseconds, or minus the number of months for calendar buckets.
int64 bucket_width_code(const Interval *width);

// lookup_time_zone: the zone by name, or ERROR naming the time_zone argument.
pg_tz *lookup_time_zone(const char *name);

// bucket_of: the bucket of a value (a Datum of the spec's kind).
Datum bucket_of(BucketSpec *spec, Datum value);

// bucket_bounds: the smallest and largest source values (inclusive) that can
// fall in bucket b; a superset is allowed, callers re-check with bucket_of.
void bucket_bounds(BucketSpec *spec, Datum b, Datum *lo, Datum *hi);

// window_bounds_exact: whether every value in [lo of first, hi of last] (see
// bucket_bounds) falls in a bucket in [first, last], so that a scan of that
// range needs no per-row bucket check.  Always for timestamp and date; for
// timestamptz when the zone's offset is constant for two days around each
// finite edge (near a DST change the bounds are a superset).
bool window_bounds_exact(BucketSpec *spec, Datum first, Datum last);

}  // namespace memoria

// args.hpp: arguments of memoria's SQL functions: errors that name the
// argument, the rollup's name, a time window (refresh_window, verify,
// backfill) and the buckets it covers.
#pragma once
#include "catalog.hpp"

namespace memoria {

// arg_error: ERROR with a SQLSTATE, a message naming the argument, a hint.
[[noreturn]] void arg_error(int code, const char *msg, const char *hint);

// name_arg: argument 0, the rollup's name (ERROR if NULL).
const char *name_arg(FunctionCallInfo fcinfo);

// window_args: arguments 1 and 2, [window_start, window_end) (ERROR if NULL
// or empty).
void window_args(FunctionCallInfo fcinfo, TimestampTz *window_start, TimestampTz *window_end);

// window_buckets: the first and last bucket overlapping [ws, we), as values
// of the rollup's time type; with exact, whether the source range they span
// holds exactly their rows (window_bounds_exact).  For timestamp and date
// sources the window is read in the session's time zone, which is how the
// literal '2026-01-01' became a timestamptz.
void window_buckets(const Rollup *r, TimestampTz ws, TimestampTz we, Datum *first, Datum *last,
                    bool *exact = NULL);

// frozen_before: with freeze_after set, the first bucket that is not frozen
// (every bucket before it ended freeze_after or longer before the rollup's
// watermark -- or this transaction's start, if earlier -- in the rollup's
// time zone); false when nothing is.
bool frozen_before(const Rollup *r, Datum *first_open);

// clamp_to_unfrozen: move *first up to the first bucket not frozen; false
// when no bucket of [first, last] is left.  clamp_to: the same, given it.
bool clamp_to_unfrozen(const Rollup *r, Datum *first, Datum last);
bool clamp_to(const Rollup *r, Datum open, Datum *first, Datum last);

// time_less: a < b for values of the rollup's time type.
bool time_less(const Rollup *r, Datum a, Datum b);

// infinity_of: -infinity or infinity of a time type.
Datum infinity_of(Oid type, bool upper);

// elapsed_since: now minus `started`, as an interval.
Interval *elapsed_since(TimestampTz started);

}  // namespace memoria

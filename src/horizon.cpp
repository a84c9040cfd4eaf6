// horizon.cpp: the updated_at horizon.
//
// In updated_at mode INSERTs write no dirty key: a refresh finds new and
// corrected rows by scanning updated_at in (scanned_through, horizon].  A row's
// updated_at is normally now() (its transaction's start) or clock_timestamp(),
// so a transaction that is still open can commit rows stamped as far back as
// its start.  The horizon therefore never passes the start of any open
// transaction in this database, however old (a fixed lag would lose the rows
// of a transaction open longer than the lag).  It stays at least safety_lag
// in the past as well: that covers clocks of clients that stamp rows
// themselves and the instant between a transaction taking its start time and
// publishing it.
//
// Where the start times come from: the backend status array (what
// pg_stat_activity shows, read without its privilege filter).  A backend
// clears its entry only after its commit is visible, so a transaction absent
// from the array is either visible to the next statement's snapshot or gone.
// A backend running a query string between two of its transactions counts
// from the string's start: every transaction a string begins after a COMMIT
// in it takes that time as its now(), and in between (stalled, say, writing
// results to a client that does not read) no transaction start is published.
// (A procedure's transactions take fresh start times.)
// Three cases hold the horizon where it is:
//  - a prepared transaction that holds a lock on the source or one of its
//    partitions (it may have written rows; its start time is not recorded);
//  - a backend of this database with track_activities off (its start time is
//    not published);
//  - a REPEATABLE READ / SERIALIZABLE caller whose snapshot misses a
//    transaction that committed since it was taken: rows of that transaction
//    would be invisible to the scan although below the horizon.
#include "horizon.hpp"

extern "C" {
#include "utils/backend_status.h"
}

namespace memoria {

static TimestampTz minus_interval(TimestampTz t, const Interval *i) {
    return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval, TimestampTzGetDatum(t),
                                                   IntervalPGetDatum(const_cast<Interval *>(i))));
}

// open_transactions_bound: min(bound, start of every open transaction, or of
// the query string running outside one, of a client backend or background
// worker of this database - 1us); false if a backend of this database does
// not publish its start times.
static bool open_transactions_bound(TimestampTz *bound) {
    bool known = true;
    pgstat_clear_backend_activity_snapshot();  // read the array afresh
    int n = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= n; i++) {
        LocalPgBackendStatus *l = pgstat_fetch_stat_local_beentry(i);
        if (l == NULL) continue;
        PgBackendStatus *b = &l->backendStatus;
        if (b->st_databaseid != MyDatabaseId) continue;
        if (b->st_backendType != B_BACKEND && b->st_backendType != B_BG_WORKER) continue;
        if (b->st_state == STATE_DISABLED) known = false;
        TimestampTz start = b->st_xact_start_timestamp;
        if (start == 0 && (b->st_state == STATE_RUNNING || b->st_state == STATE_FASTPATH))
            start = b->st_activity_start_timestamp;
        if (start != 0 && start - 1 < *bound) *bound = start - 1;
    }
    pgstat_clear_backend_activity_snapshot();
    return known;
}

// prepared_writer_exists: a prepared transaction holds a lock on the source
// or one of its partitions.
static bool prepared_writer_exists(const Rollup *r) {
    List *rels = find_all_inheritors(r->source, NoLock, NULL);
    int n = list_length(rels);
    Datum *oids = (Datum *) palloc(n * sizeof(Datum));
    for (int i = 0; i < n; i++) oids[i] = ObjectIdGetDatum(list_nth_oid(rels, i));
    Oid types[2] = {OIDARRAYOID, OIDOID};
    Datum values[2] = {PointerGetDatum(construct_array(oids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT)),
                       ObjectIdGetDatum(MyDatabaseId)};
    spi_exec("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE pid IS NULL AND locktype = 'relation' "
             "AND database = $2 AND relation = ANY ($1))",
             2, types, values, NULL, false);
    bool isnull;
    return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

// snapshot_is_current: no transaction committed since the transaction
// snapshot was taken (only asked under REPEATABLE READ / SERIALIZABLE).
static bool snapshot_is_current(void) {
    Snapshot mine = GetTransactionSnapshot();
    TransactionId xmin = mine->xmin, xmax = mine->xmax;
    Snapshot latest = GetLatestSnapshot();
    TransactionId end = latest->xmax;
    const uint32 MAX_CHECKED = 1000000;  // beyond that, assume something committed
    uint32 checked = 0;
    for (TransactionId xid = xmin; TransactionIdPrecedes(xid, end);) {
        if (++checked > MAX_CHECKED) return false;
        TransactionId next = xid;
        TransactionIdAdvance(next);
        bool invisible_to_mine = TransactionIdFollowsOrEquals(xid, xmax) || XidInMVCCSnapshot(xid, mine);
        if (invisible_to_mine && !XidInMVCCSnapshot(xid, latest) && TransactionIdDidCommit(xid)) return false;
        xid = next;
    }
    return true;
}

bool updated_at_horizon(const Rollup *r, bool at_create, TimestampTz *horizon) {
    TimestampTz h = minus_interval(GetCurrentTimestamp(), &r->safety_lag);
    if (!open_transactions_bound(&h)) return false;
    // At creation the source is locked against writers: no prepared
    // transaction can hold rows of it, and the snapshot question is moot.
    if (!at_create) {
        if (prepared_writer_exists(r)) return false;
        if (IsolationUsesXactSnapshot() && !snapshot_is_current()) return false;
    }
    *horizon = h;
    return true;
}

}  // namespace memoria

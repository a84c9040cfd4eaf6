// worker.cpp: the background worker pool, on the model of autovacuum.
//
// The *launcher* starts once the server accepts writes (never on a standby).
// It keeps, in shared memory, one entry per database it may serve (those
// that accept connections, or those named in memoria.databases), each with
// the time it is next *due*.  Whenever a database is due it starts a
// *database worker* for it, at most memoria.max_workers at a time, the
// longest-waiting database first.  A database worker:
//   - where memoria is not installed, says so and exits; the launcher looks
//     again only after NO_MEMORIA_RECHECK, or at once when CREATE EXTENSION
//     memoria (or create_rollup, alter_rollup) wakes it;
//   - otherwise refreshes every rollup whose refresh_interval has passed,
//     in batches of memoria.batch_keys keys, one transaction per batch, as
//     the rollup's owner (memoria.refresh(): the same advisory lock as every
//     other entry point, so it runs beside pg_cron and manual refreshes);
//   - exits when nothing is due any more, telling the launcher when the
//     next rollup will be, or after memoria.naptime of work when other
//     databases wait (it is due again at once, behind them).
// So the pool is shared fairly by every database with due work, whatever
// their number or their order in pg_database.  memoria.workers() shows it.
// SIGHUP reloads the configuration; SIGTERM ends a process cleanly.
#include "catalog.hpp"
#include "guard.hpp"
#include "worker.hpp"

extern "C" {
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/logicallauncher.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/wait_event.h"

PGDLLEXPORT void memoria_launcher_main(Datum arg);
PGDLLEXPORT void memoria_database_main(Datum arg);
}

namespace memoria {

static const int MAX_DATABASE_WORKERS = 64;
static const int MAX_DATABASES = 4096;     // databases the launcher tracks
static const int MAX_WAKEUPS = 64;
// How long a database without memoria goes unvisited (unless woken).
static const long NO_MEMORIA_RECHECK_MS = 10 * 60 * 1000L;
// The longest a database with memoria goes unvisited: its rollups' own
// schedule, capped by this (catalog changes memoria is not told about).
static const long MAX_IDLE_MS = 10 * 60 * 1000L;

// What the launcher knows of one database.
enum class DbState : char {
    Unknown = 'u',    // not visited yet
    NoMemoria = 'n',  // visited: the extension is not installed
    Idle = 'i',       // visited: nothing due until next_due
    Running = 'r',    // a worker serves it now
};

struct PoolDatabase {
    Oid db;
    DbState state;
    bool woken;            // woken while running: due again when its worker exits
    int pid;               // its worker's, while Running
    TimestampTz next_due;  // due from then on (waiting since then, if past)
    TimestampTz since;     // when the current state began
    int64 starts;          // workers started for it
};

// One slot per running worker: where it reports before exiting.
struct PoolWorker {
    uint64 generation;  // the launcher's that started it (a stale worker's report is ignored)
    Oid db;
    bool reported;
    bool has_memoria;
    int64 next_due_ms;  // how long until its next rollup is due
};

struct Pool {
    LWLock *lock;
    Latch *launcher_latch;  // NULL while no launcher runs
    uint64 generation;      // one more for every launcher start
    int waiting;            // due databases without a worker (read by workers)
    int ndatabases;
    int nwakeups;
    Oid wakeups[MAX_WAKEUPS];
    PoolWorker workers[MAX_DATABASE_WORKERS];
    PoolDatabase databases[MAX_DATABASES];
};

static Pool *pool = NULL;
static shmem_request_hook_type prev_shmem_request = NULL;
static shmem_startup_hook_type prev_shmem_startup = NULL;

static void pool_shmem_request(void) {
    if (prev_shmem_request) prev_shmem_request();
    RequestAddinShmemSpace(MAXALIGN(sizeof(Pool)));
    RequestNamedLWLockTranche("memoria", 1);
}

static void pool_shmem_startup(void) {
    if (prev_shmem_startup) prev_shmem_startup();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    pool = (Pool *) ShmemInitStruct("memoria worker pool", sizeof(Pool), &found);
    if (!found) {
        memset(pool, 0, sizeof(Pool));
        pool->lock = &(GetNamedLWLockTranche("memoria"))->lock;
    }
    LWLockRelease(AddinShmemInitLock);
}

static void fill_worker(BackgroundWorker *w, const char *function, const char *name) {
    memset(w, 0, sizeof *w);
    w->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w->bgw_start_time = BgWorkerStart_RecoveryFinished;
    strlcpy(w->bgw_library_name, "memoria", BGW_MAXLEN);
    strlcpy(w->bgw_function_name, function, BGW_MAXLEN);
    strlcpy(w->bgw_name, name, BGW_MAXLEN);
    strlcpy(w->bgw_type, name, BGW_MAXLEN);
}

void register_launcher(void) {
    prev_shmem_request = shmem_request_hook;
    shmem_request_hook = pool_shmem_request;
    prev_shmem_startup = shmem_startup_hook;
    shmem_startup_hook = pool_shmem_startup;
    BackgroundWorker w;
    fill_worker(&w, "memoria_launcher_main", "memoria launcher");
    w.bgw_restart_time = 10;
    RegisterBackgroundWorker(&w);
}

static void wake_worker_pool(Oid database) {
    if (pool == NULL) return;  // not preloaded: no pool
    LWLockAcquire(pool->lock, LW_EXCLUSIVE);
    bool queued = false;
    for (int i = 0; i < pool->nwakeups; i++) queued = queued || pool->wakeups[i] == database;
    if (!queued && pool->nwakeups < MAX_WAKEUPS) pool->wakeups[pool->nwakeups++] = database;
    Latch *latch = pool->launcher_latch;
    LWLockRelease(pool->lock);
    if (latch != NULL) SetLatch(latch);
}

static bool wake_at_commit = false;

static void wake_on_commit(XactEvent event, void *arg) {
    if (event == XACT_EVENT_COMMIT && wake_at_commit) wake_worker_pool(MyDatabaseId);
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
        wake_at_commit = false;
}

void wake_worker_pool_at_commit(void) {
    static bool registered = false;
    if (pool == NULL) return;
    if (!registered) RegisterXactCallback(wake_on_commit, NULL);
    registered = true;
    wake_at_commit = true;
}

// ---------------------------------------------------------------------------
// The launcher.
// ---------------------------------------------------------------------------

// database_allowed: whether memoria.databases (empty: all) names `name`.
static bool database_allowed(const char *name) {
    if (databases == NULL || databases[0] == '\0') return true;
    char *copy = pstrdup(databases);
    List *names;
    bool allowed = false;
    // Names as written (not folded to lower case), or double-quoted.
    if (SplitGUCList(copy, ',', &names)) {
        ListCell *lc;
        foreach (lc, names) allowed = allowed || strcmp((const char *) lfirst(lc), name) == 0;
    }
    return allowed;
}

// list_databases: oids of the databases to serve, allocated in `into`.
static List *list_databases(MemoryContext into) {
    List *out = NIL;
    StartTransactionCommand();
    (void) GetTransactionSnapshot();
    Relation rel = table_open(DatabaseRelationId, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, NULL);
    HeapTuple tup;
    while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL) {
        Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
        if (!db->datallowconn || db->datistemplate || !database_allowed(NameStr(db->datname))) continue;
        MemoryContext old = MemoryContextSwitchTo(into);
        out = lappend_oid(out, db->oid);
        MemoryContextSwitchTo(old);
    }
    table_endscan(scan);
    table_close(rel, AccessShareLock);
    CommitTransactionCommand();
    return out;
}

static PoolDatabase *find_database(Oid db) {
    for (int i = 0; i < pool->ndatabases; i++)
        if (pool->databases[i].db == db) return &pool->databases[i];
    return NULL;
}

static void set_state(PoolDatabase *d, DbState state, TimestampTz now) {
    if (d->state != state) d->since = now;
    d->state = state;
}

// sync_databases: add the databases that appeared (due at once), forget the
// ones that went (unless a worker still serves them).  Under the lock.
static void sync_databases(List *dbs, TimestampTz now, bool *warned_full) {
    for (int i = 0; i < pool->ndatabases;) {
        PoolDatabase *d = &pool->databases[i];
        if (d->state != DbState::Running && !list_member_oid(dbs, d->db))
            *d = pool->databases[--pool->ndatabases];
        else
            i++;
    }
    ListCell *lc;
    foreach (lc, dbs) {
        Oid db = lfirst_oid(lc);
        if (find_database(db) != NULL) continue;
        if (pool->ndatabases == MAX_DATABASES) {
            if (!*warned_full)
                ereport(WARNING, (errmsg("memoria: more than %d databases; the others are not served", MAX_DATABASES),
                                  errhint("List the databases to serve in memoria.databases.")));
            *warned_full = true;
            break;
        }
        PoolDatabase *d = &pool->databases[pool->ndatabases++];
        memset(d, 0, sizeof *d);
        d->db = db;
        d->state = DbState::Unknown;
        d->next_due = now;
        d->since = now;
    }
}

// take_wakeups: databases woken by CREATE EXTENSION, create_rollup or
// alter_rollup are due at once.  Under the lock.
static void take_wakeups(TimestampTz now) {
    for (int i = 0; i < pool->nwakeups; i++) {
        PoolDatabase *d = find_database(pool->wakeups[i]);
        if (d == NULL) continue;  // a new database: the next sync adds it
        if (d->state == DbState::Running) {
            d->woken = true;
        } else {
            d->next_due = now;
            if (d->state == DbState::NoMemoria) set_state(d, DbState::Unknown, now);
        }
    }
    pool->nwakeups = 0;
}

struct Slot {
    BackgroundWorkerHandle *handle;
};

// reap_workers: the workers that exited; their databases' next due time
// from what they reported (none: it failed; try again after naptime).
static void reap_workers(Slot *slots, TimestampTz now) {
    for (int i = 0; i < MAX_DATABASE_WORKERS; i++) {
        if (slots[i].handle == NULL) continue;
        pid_t pid;
        if (GetBackgroundWorkerPid(slots[i].handle, &pid) != BGWH_STOPPED) continue;
        pfree(slots[i].handle);
        slots[i].handle = NULL;
        LWLockAcquire(pool->lock, LW_EXCLUSIVE);
        PoolWorker *w = &pool->workers[i];
        PoolDatabase *d = find_database(w->db);
        if (d != NULL) {
            d->pid = 0;
            if (!w->reported) {
                set_state(d, DbState::Idle, now);
                d->next_due = TimestampTzPlusMilliseconds(now, (int64) naptime_seconds * 1000);
            } else if (!w->has_memoria) {
                set_state(d, DbState::NoMemoria, now);
                d->next_due = TimestampTzPlusMilliseconds(now, NO_MEMORIA_RECHECK_MS);
            } else {
                set_state(d, DbState::Idle, now);
                d->next_due = TimestampTzPlusMilliseconds(now, Min(w->next_due_ms, MAX_IDLE_MS));
            }
            if (d->woken) d->next_due = now;
            d->woken = false;
        }
        w->db = InvalidOid;
        LWLockRelease(pool->lock);
    }
}

static bool start_worker(Slot *slot, int index, PoolDatabase *d, TimestampTz now) {
    BackgroundWorker w;
    fill_worker(&w, "memoria_database_main", "memoria worker");
    w.bgw_restart_time = BGW_NEVER_RESTART;  // the launcher starts it again
    w.bgw_main_arg = Int32GetDatum(index);
    w.bgw_notify_pid = MyProcPid;            // its exit sets the launcher's latch
    memcpy(w.bgw_extra, &pool->generation, sizeof(uint64));
    pool->workers[index].generation = pool->generation;
    pool->workers[index].db = d->db;
    pool->workers[index].reported = false;
    BackgroundWorkerHandle *handle;
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    bool ok = RegisterDynamicBackgroundWorker(&w, &handle);
    MemoryContextSwitchTo(old);
    if (!ok) {
        pool->workers[index].db = InvalidOid;
        return false;
    }
    slot->handle = handle;
    set_state(d, DbState::Running, now);
    d->starts++;
    return true;
}

static int compare_due(const void *a, const void *b) {
    TimestampTz x = (*(PoolDatabase *const *) a)->next_due, y = (*(PoolDatabase *const *) b)->next_due;
    return x < y ? -1 : x > y ? 1 : 0;
}

// start_due_workers: a worker for each due database, longest waiting
// first, while the pool has room; returns how long until the next is due.
static long start_due_workers(Slot *slots, TimestampTz now, bool *warned_slots) {
    LWLockAcquire(pool->lock, LW_EXCLUSIVE);
    PoolDatabase **due = (PoolDatabase **) palloc((pool->ndatabases + 1) * sizeof(PoolDatabase *));
    int ndue = 0;
    long sleep_ms = (long) naptime_seconds * 1000L;
    for (int i = 0; i < pool->ndatabases; i++) {
        PoolDatabase *d = &pool->databases[i];
        if (d->state == DbState::Running) continue;
        if (d->next_due <= now)
            due[ndue++] = d;
        else
            sleep_ms = Min(sleep_ms, (long) ((d->next_due - now) / 1000) + 1);
    }
    qsort(due, ndue, sizeof(PoolDatabase *), compare_due);
    int started = 0;
    for (int k = 0; k < ndue && worker_enabled; k++) {
        int running = 0, free_slot = -1;
        for (int i = 0; i < MAX_DATABASE_WORKERS; i++) {
            if (slots[i].handle != NULL) running++;
            else if (free_slot < 0 && i < max_workers) free_slot = i;
        }
        if (running >= max_workers || free_slot < 0) break;
        if (!start_worker(&slots[free_slot], free_slot, due[k], now)) {
            if (!*warned_slots)
                ereport(WARNING, (errmsg("memoria: could not start a database worker"),
                                  errhint("Raise max_worker_processes: memoria's workers share it with parallel "
                                          "query and logical replication.")));
            *warned_slots = true;
            break;
        }
        started++;
    }
    pool->waiting = worker_enabled ? ndue - started : 0;
    LWLockRelease(pool->lock);
    pfree(due);
    return sleep_ms;
}

// database_wanted: whether someone waits for the database's lock in a mode
// a connected session is in the way of: DROP DATABASE, CREATE DATABASE ...
// TEMPLATE (they wait a few seconds for other sessions to leave).
static bool database_wanted(Oid db) {
    LOCKTAG tag;
    SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, db, 0);
    VirtualTransactionId *holders = GetLockConflicts(&tag, RowExclusiveLock, NULL);
    return VirtualTransactionIdIsValid(holders[0]);
}

// release_wanted_databases: a worker in a database someone wants to drop
// or copy is told to leave now (as autovacuum's are), even in the middle of
// a long batch: its work is undone, nothing is lost.  Returns whether any
// worker runs (the launcher then looks again every second).
static bool release_wanted_databases(void) {
    bool running = false;
    LWLockAcquire(pool->lock, LW_SHARED);
    for (int i = 0; i < pool->ndatabases; i++) {
        PoolDatabase *d = &pool->databases[i];
        if (d->state != DbState::Running) continue;
        running = true;
        if (d->pid != 0 && database_wanted(d->db)) kill(d->pid, SIGTERM);
    }
    LWLockRelease(pool->lock);
    return running;
}

// check_worker_room: a warning when memoria's pool would leave logical
// replication's workers no room in max_worker_processes (parallel query
// takes what is left; it runs with fewer workers, or none, when there is
// none).
static void check_worker_room(void) {
    int needed = 1 + max_workers + max_logical_replication_workers;
    if (needed > max_worker_processes)
        ereport(WARNING,
                (errmsg("memoria: max_worker_processes (%d) is less than memoria's launcher and "
                        "memoria.max_workers (1 + %d) plus max_logical_replication_workers (%d)",
                        max_worker_processes, max_workers, max_logical_replication_workers),
                 errdetail("When memoria's workers all run, logical replication's may not start."),
                 errhint("Raise max_worker_processes to at least %d (plus what parallel query should get), or "
                         "lower memoria.max_workers.",
                         needed)));
}

}  // namespace memoria

using namespace memoria;

// memoria_launcher_main: starts a database worker for each due database.
void memoria_launcher_main(Datum arg) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(NULL, NULL, 0);  // shared catalogs only
    pgstat_report_appname("memoria launcher");
    ereport(LOG, (errmsg("memoria launcher started")));
    check_worker_room();
    // A launcher that exited (SIGTERM, an error) left databases marked as
    // served by workers it no longer knows: they are due again, and the
    // workers it started report to nobody.
    LWLockAcquire(pool->lock, LW_EXCLUSIVE);
    pool->launcher_latch = MyLatch;
    pool->generation++;
    TimestampTz start = GetCurrentTimestamp();
    for (int i = 0; i < pool->ndatabases; i++)
        if (pool->databases[i].state == DbState::Running) {
            set_state(&pool->databases[i], DbState::Idle, start);
            pool->databases[i].next_due = start;
            pool->databases[i].pid = 0;
        }
    for (int i = 0; i < MAX_DATABASE_WORKERS; i++) pool->workers[i].db = InvalidOid;
    LWLockRelease(pool->lock);
    on_shmem_exit([](int, Datum) {
        LWLockAcquire(pool->lock, LW_EXCLUSIVE);
        pool->launcher_latch = NULL;
        LWLockRelease(pool->lock);
    }, (Datum) 0);

    Slot slots[MAX_DATABASE_WORKERS];
    memset(slots, 0, sizeof slots);
    MemoryContext round = AllocSetContextCreate(TopMemoryContext, "memoria launcher round", ALLOCSET_DEFAULT_SIZES);
    bool warned_full = false, warned_slots = false;
    TimestampTz listed = 0;
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
            listed = 0;  // memoria.databases may have changed
        }
        MemoryContextReset(round);
        MemoryContext old = MemoryContextSwitchTo(round);
        TimestampTz now = GetCurrentTimestamp();
        reap_workers(slots, now);
        // The database list: every naptime (new and dropped databases).
        List *dbs = NIL;
        bool relist = TimestampDifferenceExceeds(listed, now, naptime_seconds * 1000);
        if (relist) {
            dbs = list_databases(round);
            listed = now;
        }
        LWLockAcquire(pool->lock, LW_EXCLUSIVE);
        if (relist) sync_databases(dbs, now, &warned_full);
        take_wakeups(now);
        LWLockRelease(pool->lock);
        long sleep_ms = start_due_workers(slots, now, &warned_slots);
        if (release_wanted_databases()) sleep_ms = Min(sleep_ms, 1000L);
        MemoryContextSwitchTo(old);
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, Max(sleep_ms, 10L),
                         PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

// ---------------------------------------------------------------------------
// A database worker.
// ---------------------------------------------------------------------------

namespace memoria {

static int my_slot = -1;
static uint64 my_generation = 0;

// report: what the launcher needs to know when this worker exits (unless
// the launcher that started it is gone: its slot may be another's now).
static void report(bool has_memoria, long next_due_ms) {
    LWLockAcquire(pool->lock, LW_EXCLUSIVE);
    PoolWorker *w = &pool->workers[my_slot];
    if (w->generation == my_generation) {
        w->reported = true;
        w->has_memoria = has_memoria;
        w->next_due_ms = next_due_ms;
    }
    LWLockRelease(pool->lock);
}

static bool others_waiting(void) {
    LWLockAcquire(pool->lock, LW_SHARED);
    bool waiting = pool->waiting > 0;
    LWLockRelease(pool->lock);
    return waiting;
}

// begin_transaction: a transaction whose start pg_stat_activity shows as
// this refresh's (xact_start, query_start), not the worker's.
static void begin_transaction(void) {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
}

static void end_transaction(void) {
    PopActiveSnapshot();
    CommitTransactionCommand();
}

// due_rollups_here: the due rollups of this database (catalog.hpp);
// *has_extension is false where memoria is not installed; *sleep_ms is how
// long until the next rollup is due.
static List *due_rollups_here(bool *has_extension, long *sleep_ms, MemoryContext into) {
    List *out = NIL;
    *sleep_ms = MAX_IDLE_MS;
    begin_transaction();
    *has_extension = OidIsValid(get_extension_oid("memoria", true));
    if (*has_extension) out = due_rollups(sleep_ms, into);
    end_transaction();
    return out;
}

// What one batch says about a rollup.
enum class Batch {
    More,  // another batch should follow
    Done,  // drained for now
    Skip,  // busy elsewhere, or failing as a whole: not again in this visit
};

// refresh_batch: one transaction of memoria.refresh(name, batch_keys) as the
// rollup's owner.
static Batch refresh_batch(const DueRollup *d) {
    Batch more = Batch::Done;
    begin_transaction();
    pgstat_report_activity(STATE_RUNNING, psprintf("memoria: refresh of rollup %s", d->name));
    SPI_connect();
    SavedUser saved = become_user(d->owner);
    Oid types[2] = {TEXTOID, INT8OID};
    Datum values[2] = {CStringGetTextDatum(d->name), Int64GetDatum((int64) batch_keys)};
    spi_exec("SELECT status, keys_refreshed FROM memoria.refresh($1, $2)", 2, types, values, NULL, false);
    if (SPI_processed > 0) {
        char *status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
        bool isnull;
        int64 keys = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
        // On while batches are full; past keys that fail too (status
        // 'error', the others refreshed), until a batch does nothing.
        // Busy (another session refreshes it) or failing as a whole: left
        // alone until the worker's next visit.
        if ((strcmp(status, "ok") == 0 && keys >= batch_keys) || (strcmp(status, "error") == 0 && keys > 0))
            more = Batch::More;
        else if (strcmp(status, "busy") == 0 || strcmp(status, "error") == 0)
            more = Batch::Skip;
    }
    restore_user(saved);
    SPI_finish();
    end_transaction();
    pgstat_report_activity(STATE_IDLE, NULL);
    return more;
}

// drop_database_pending: whether DROP DATABASE or CREATE DATABASE ...
// TEMPLATE waits for this one (see database_wanted).
static bool drop_database_pending(void) {
    return database_wanted(MyDatabaseId);
}

// Whether this worker should leave now: its database is being dropped, the
// pool is off, or it has had its turn and others wait.
static bool should_leave(TimestampTz started) {
    if (ConfigReloadPending) {
        ConfigReloadPending = false;
        ProcessConfigFile(PGC_SIGHUP);
    }
    return !worker_enabled || drop_database_pending() ||
           (TimestampDifferenceExceeds(started, GetCurrentTimestamp(), naptime_seconds * 1000) && others_waiting());
}

// refresh_one_batch: one batch of one rollup; whether it has more.  An
// unexpected error is logged and the rollup counts as done for now.
static Batch refresh_one_batch(const DueRollup *d) {
    MemoryContext mcxt = CurrentMemoryContext;
    volatile Batch more = Batch::Skip;
    PG_TRY();
    { more = refresh_batch(d); }
    PG_CATCH();
    {
        MemoryContextSwitchTo(mcxt);
        EmitErrorReport();
        FlushErrorState();
        AbortCurrentTransaction();
        pgstat_report_activity(STATE_IDLE, NULL);
    }
    PG_END_TRY();
    return more;
}

// Rollups left alone for the rest of this worker's visit (names, in
// TopMemoryContext): without it a rollup that another session keeps busy,
// or whose refresh keeps failing, would be retried in a tight loop.
static List *skipped = NIL;

static void skip(const DueRollup *d) {
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    skipped = lappend(skipped, pstrdup(d->name));
    MemoryContextSwitchTo(old);
}

static bool is_skipped(const char *name) {
    ListCell *lc;
    foreach (lc, skipped)
        if (strcmp((const char *) lfirst(lc), name) == 0) return true;
    return false;
}

// due_not_skipped: the due rollups, less those skipped.
static List *due_not_skipped(bool *has_extension, long *sleep_ms, MemoryContext into) {
    List *out = NIL;
    ListCell *lc;
    foreach (lc, due_rollups_here(has_extension, sleep_ms, into))
        if (!is_skipped(((const DueRollup *) lfirst(lc))->name)) out = lappend(out, lfirst(lc));
    // Skipped ones are due again at the next visit, after a naptime.
    if (skipped != NIL) *sleep_ms = Min(*sleep_ms, (long) naptime_seconds * 1000L);
    return out;
}

static bool has_rollup(List *l, const char *name) {
    ListCell *lc;
    foreach (lc, l)
        if (strcmp(((const DueRollup *) lfirst(lc))->name, name) == 0) return true;
    return false;
}

// refresh_due: the due rollups of this database, a batch of each in turn,
// then again for those with more and those that became due meanwhile (one
// rollup's backlog does not hold the others back), until none has more (the
// caller then looks again); false when the worker should leave first.
static bool refresh_due(List *due, TimestampTz started, MemoryContext into) {
    while (due != NIL) {
        List *next = NIL;
        ListCell *lc;
        foreach (lc, due) {
            Batch b = refresh_one_batch((const DueRollup *) lfirst(lc));
            if (b == Batch::More) next = lappend(next, lfirst(lc));
            if (b == Batch::Skip) skip((const DueRollup *) lfirst(lc));
            CHECK_FOR_INTERRUPTS();
            if (should_leave(started)) return false;
        }
        if (next == NIL) break;
        bool has_extension;
        long sleep_ms;
        foreach (lc, due_not_skipped(&has_extension, &sleep_ms, into))
            if (!has_rollup(next, ((const DueRollup *) lfirst(lc))->name)) next = lappend(next, lfirst(lc));
        due = next;
    }
    return true;
}

// Every log line of a worker names its database.
static void database_context(void *arg) {
    errcontext("memoria worker in database \"%s\"", (const char *) arg);
}

}  // namespace memoria

// memoria_database_main: refreshes the due rollups of one database, then
// exits (see the top of the file).
void memoria_database_main(Datum arg) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    my_slot = DatumGetInt32(arg);
    memcpy(&my_generation, MyBgworkerEntry->bgw_extra, sizeof(uint64));
    LWLockAcquire(pool->lock, LW_SHARED);
    Oid db = pool->workers[my_slot].generation == my_generation ? pool->workers[my_slot].db : InvalidOid;
    LWLockRelease(pool->lock);
    if (!OidIsValid(db)) proc_exit(0);  // started by a launcher that is gone
    BackgroundWorkerInitializeConnectionByOid(db, InvalidOid, 0);
    pgstat_report_appname("memoria worker");
    LWLockAcquire(pool->lock, LW_EXCLUSIVE);
    if (PoolDatabase *d = find_database(db)) d->pid = MyProcPid;
    LWLockRelease(pool->lock);
    StartTransactionCommand();
    char *name = get_database_name(MyDatabaseId);
    char *dbname = MemoryContextStrdup(TopMemoryContext, name ? name : "?");
    CommitTransactionCommand();
    ErrorContextCallback context;
    context.callback = database_context;
    context.arg = dbname;
    context.previous = error_context_stack;
    error_context_stack = &context;
    // The worker runs as a superuser: no object of a database user's may
    // stand in for a built-in one in what it runs.
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
    MemoryContext round = AllocSetContextCreate(TopMemoryContext, "memoria worker round", ALLOCSET_DEFAULT_SIZES);
    TimestampTz started = GetCurrentTimestamp();
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        MemoryContextReset(round);
        MemoryContextSwitchTo(round);
        bool has_extension;
        long sleep_ms;
        List *due = due_not_skipped(&has_extension, &sleep_ms, round);
        if (!has_extension) {
            report(false, 0);
            proc_exit(0);
        }
        if (due == NIL || should_leave(started)) {
            report(true, due == NIL ? sleep_ms : 0);
            proc_exit(0);
        }
        bool stay = refresh_due(due, started, round);
        MemoryContextSwitchTo(round);
        if (!stay) {
            report(true, 0);  // perhaps still work to do: due again at once
            proc_exit(0);
        }
    }
}

// memoria.workers(): the pool, cluster-wide (pg_monitor): one row per
// database the launcher serves.
MEMORIA_FUNCTION(memoria_workers) {
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    if (pool == NULL) return (Datum) 0;  // not preloaded: no pool
    TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(pool->lock, LW_SHARED);
    int n = pool->ndatabases;
    PoolDatabase *copy = (PoolDatabase *) palloc((n + 1) * sizeof(PoolDatabase));
    memcpy(copy, pool->databases, n * sizeof(PoolDatabase));
    LWLockRelease(pool->lock);
    for (int i = 0; i < n; i++) {
        PoolDatabase *d = &copy[i];
        char *name = get_database_name(d->db);
        if (name == NULL) continue;
        const char *state = d->state == DbState::Running     ? "running"
                            : d->state == DbState::NoMemoria ? "no_memoria"
                            : !worker_enabled                ? "disabled"  // memoria.enabled = off
                            : d->next_due <= now             ? "waiting"
                            : d->state == DbState::Unknown   ? "unknown"
                                                             : "idle";
        Datum values[6] = {CStringGetTextDatum(name), CStringGetTextDatum(state),
                           TimestampTzGetDatum(strcmp(state, "waiting") == 0 ? d->next_due : d->since),
                           TimestampTzGetDatum(d->next_due), Int32GetDatum(d->pid), Int64GetDatum(d->starts)};
        bool nulls[6] = {false, false, false, d->state == DbState::Running, d->state != DbState::Running, false};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum) 0;
}

// memoria_internal.wake_workers(): this database has new work (the install
// script calls it: a database that just got memoria is visited at once).
MEMORIA_FUNCTION(memoria_wake_workers) {
    wake_worker_pool_at_commit();
    PG_RETURN_VOID();
}

// worker.cpp: the background worker.
//
// The *launcher* starts once the server accepts writes (never on a standby).
// Every memoria.naptime it lists the databases that accept connections (or
// those named in memoria.databases) and makes sure each has a *database
// worker*, at most memoria.max_workers at a time.  A database worker exits at
// once where the extension is not installed (the launcher looks again next
// round, so a later CREATE EXTENSION is picked up); otherwise it refreshes
// every rollup whose refresh_interval has passed, in batches of
// memoria.batch_keys keys, one transaction per batch, calling memoria.refresh()
// as the rollup's owner.  refresh() takes the same transaction-scoped advisory
// lock as every other entry point, so the worker runs safely beside pg_cron
// and manual refreshes; a failing rollup is recorded in memoria.status by
// refresh() itself and the others go on.  Any other error is logged, its
// transaction aborted, and the loop goes on.  SIGHUP reloads the
// configuration; SIGTERM ends the process cleanly.
#include "catalog.hpp"
#include "worker.hpp"

extern "C" {
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/wait_event.h"

PGDLLEXPORT void memoria_launcher_main(Datum arg);
PGDLLEXPORT void memoria_database_main(Datum arg);
}

namespace memoria {

static const int MAX_DATABASE_WORKERS = 64;

struct DatabaseWorker {
    Oid database;
    BackgroundWorkerHandle *handle;
};

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
    BackgroundWorker w;
    fill_worker(&w, "memoria_launcher_main", "memoria launcher");
    w.bgw_restart_time = 10;
    RegisterBackgroundWorker(&w);
}

// database_allowed: whether memoria.databases (empty: all) names `name`.
static bool database_allowed(const char *name) {
    if (databases == NULL || databases[0] == '\0') return true;
    char *copy = pstrdup(databases);
    List *names;
    bool allowed = false;
    if (SplitIdentifierString(copy, ',', &names)) {
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

static bool start_database_worker(DatabaseWorker *slot, Oid database) {
    BackgroundWorker w;
    fill_worker(&w, "memoria_database_main", "memoria worker");
    w.bgw_restart_time = BGW_NEVER_RESTART;  // the launcher starts it again
    w.bgw_main_arg = ObjectIdGetDatum(database);
    w.bgw_notify_pid = MyProcPid;
    BackgroundWorkerHandle *handle;
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    bool ok = RegisterDynamicBackgroundWorker(&w, &handle);
    MemoryContextSwitchTo(old);
    if (!ok) return false;
    slot->database = database;
    slot->handle = handle;
    return true;
}

}  // namespace memoria

using namespace memoria;

// memoria_launcher_main: keeps one database worker per served database.
void memoria_launcher_main(Datum arg) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(NULL, NULL, 0);  // shared catalogs only
    pgstat_report_appname("memoria launcher");
    ereport(LOG, (errmsg("memoria launcher started")));

    DatabaseWorker slots[MAX_DATABASE_WORKERS];
    memset(slots, 0, sizeof slots);
    MemoryContext round = AllocSetContextCreate(TopMemoryContext, "memoria launcher round", ALLOCSET_DEFAULT_SIZES);
    bool warned_full = false;
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        MemoryContextReset(round);
        // Forget workers that have exited.
        int running = 0;
        for (int i = 0; i < MAX_DATABASE_WORKERS; i++) {
            if (slots[i].handle == NULL) continue;
            pid_t pid;
            if (GetBackgroundWorkerPid(slots[i].handle, &pid) == BGWH_STOPPED) {
                pfree(slots[i].handle);
                slots[i].handle = NULL;
            } else {
                running++;
            }
        }
        if (worker_enabled) {
            ListCell *lc;
            foreach (lc, list_databases(round)) {
                Oid db = lfirst_oid(lc);
                bool served = false;
                for (int i = 0; i < MAX_DATABASE_WORKERS; i++)
                    served = served || (slots[i].handle != NULL && slots[i].database == db);
                if (served) continue;
                if (running >= max_workers) {
                    if (!warned_full)
                        ereport(LOG, (errmsg("memoria: all %d database workers are busy", max_workers),
                                      errhint("Raise memoria.max_workers or list the databases to serve in memoria.databases.")));
                    warned_full = true;
                    break;
                }
                for (int i = 0; i < MAX_DATABASE_WORKERS; i++) {
                    if (slots[i].handle != NULL) continue;
                    if (start_database_worker(&slots[i], db)) running++;
                    break;
                }
            }
        }
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, (long) naptime_seconds * 1000L,
                         PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

namespace memoria {

// due_rollups_here: the due rollups of this database (catalog.hpp);
// *has_extension is false where memoria is not installed; *sleep_ms is how
// long until the next rollup is due (at most naptime).
static List *due_rollups_here(bool *has_extension, long *sleep_ms, MemoryContext into) {
    List *out = NIL;
    *sleep_ms = (long) naptime_seconds * 1000L;
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    *has_extension = OidIsValid(get_extension_oid("memoria", true));
    if (*has_extension) out = due_rollups(sleep_ms, into);
    PopActiveSnapshot();
    CommitTransactionCommand();
    return out;
}

// refresh_batch: one transaction of memoria.refresh(name, batch_keys) as the
// rollup's owner; returns whether another batch should follow.
static bool refresh_batch(const DueRollup *d) {
    bool more = false;
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
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
        more = strcmp(status, "ok") == 0 && keys >= batch_keys;
    }
    restore_user(saved);
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, NULL);
    return more;
}

// drop_database_pending: whether someone holds or waits for the exclusive
// lock on this database (DROP DATABASE takes it, then waits a few seconds
// for other sessions to leave: the worker must leave).
static bool drop_database_pending(void) {
    LOCKTAG tag;
    SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, MyDatabaseId, 0);
    VirtualTransactionId *holders = GetLockConflicts(&tag, AccessShareLock, NULL);
    return VirtualTransactionIdIsValid(holders[0]);
}

// refresh_rollup: all batches of one rollup; an unexpected error is logged
// and the worker goes on with the next rollup.
static void refresh_rollup(const DueRollup *d) {
    MemoryContext mcxt = CurrentMemoryContext;
    PG_TRY();
    {
        while (refresh_batch(d)) CHECK_FOR_INTERRUPTS();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(mcxt);
        EmitErrorReport();
        FlushErrorState();
        AbortCurrentTransaction();
        pgstat_report_activity(STATE_IDLE, NULL);
    }
    PG_END_TRY();
}

}  // namespace memoria

// memoria_database_main: refreshes the due rollups of one database, forever.
void memoria_database_main(Datum arg) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
    pgstat_report_appname("memoria worker");
    // The worker runs as a superuser: no object of a database user's may
    // stand in for a built-in one in what it runs.
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
    MemoryContext round = AllocSetContextCreate(TopMemoryContext, "memoria worker round", ALLOCSET_DEFAULT_SIZES);
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        if (!worker_enabled) proc_exit(0);
        MemoryContextReset(round);
        MemoryContextSwitchTo(round);
        bool has_extension;
        long sleep_ms;
        List *due = due_rollups_here(&has_extension, &sleep_ms, round);
        if (!has_extension) proc_exit(0);
        ListCell *lc;
        foreach (lc, due) {
            refresh_rollup((const DueRollup *) lfirst(lc));
            MemoryContextSwitchTo(round);
            CHECK_FOR_INTERRUPTS();
        }
        if (due != NIL) continue;  // look again at once: new work may be due
        // Sleep until the next rollup is due, waking every second to make
        // way for a DROP DATABASE.
        for (long slept = 0; slept < sleep_ms; slept += 1000) {
            (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, Min(Max(sleep_ms - slept, 10L), 1000L),
                             PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
            CHECK_FOR_INTERRUPTS();
            if (drop_database_pending()) proc_exit(0);
            if (ConfigReloadPending) break;
        }
    }
}

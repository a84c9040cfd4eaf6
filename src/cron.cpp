// cron.cpp: a rollup's pg_cron jobs, wherever pg_cron lives.
//
// pg_cron keeps its jobs in one database, cron.database_name (often
// 'postgres'), and runs each job in the database the job names.  When that is
// this database ("local"), memoria reads and writes cron.job here, in the
// caller's transaction.  When it is another one ("remote"), memoria reaches it
// through a short-lived background worker connected there as the calling
// role: pg_cron's own privileges and row security decide what it may do, as
// if the role had connected there itself.  The worker runs one of the fixed
// statements below with the caller's values as parameters, and hands back
// one text (or the error) through a dynamic shared memory segment.
//
// A remote change cannot join the caller's transaction.  What follows a
// rollup's drop or rename (the trigger on memoria.rollups) is therefore
// queued and done just before the caller commits: a rolled-back drop, a
// dry run or an aborted subtransaction leaves the job alone.  What a user
// asks for directly (schedule, unschedule) is done at once, as with dblink.
#include "guard.hpp"
#include "session.hpp"

extern "C" {
#include "commands/dbcommands.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/syscache.h"
PGDLLEXPORT void memoria_cron_main(Datum arg);
}

namespace memoria {

namespace {

// Which jobs are a rollup's, found the same way here and in pg_cron's
// database.  $1 the rollups' database, $2 the suffix of memoria's job names
// there ('' here, '@<database>' from another database), $3 the pattern of a
// command that refreshes one rollup (its name is the captured group).
// rollup: the rollup a job refreshes, by its name memoria:<rollup><suffix>
// or by a command such as CALL memoria.run('<rollup>').
const char *JOBS =
    "SELECT j.jobid, j.jobname, j.schedule, j.active, j.username::text AS username,"
    "       coalesce(CASE WHEN j.jobname LIKE 'memoria:%' AND right(j.jobname, length($2)) = $2"
    "                     THEN substr(j.jobname, 9, length(j.jobname) - 8 - length($2)) END,"
    "                replace(substring(j.command from $3), '''''', '''')) AS rollup"
    " FROM cron.job j WHERE j.database = $1";

// The jobs of rollup $4 that the acting role may change: its own (a
// superuser: all).
const char *OWN_JOBS_OF_4 =
    "x.rollup = $4 AND (x.username = current_user OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))";
// A job's name after its rollup's rename to $5: memoria's names follow.
const char *RENAMED_JOB = "CASE WHEN g.jobname LIKE 'memoria:%' THEN 'memoria:' || $5 || $2 ELSE g.jobname END";

// A command that does nothing but refresh one rollup (case-insensitive).
const char *COMMAND_PATTERN =
    "(?i)^\\s*(?:call\\s+memoria\\.run|select\\s+(?:\\*\\s+from\\s+)?memoria\\.refresh)"
    "\\s*\\(\\s*'((?:[^']|'')*)'\\s*(?:,[^;]*)?\\)\\s*;?\\s*$";

enum Action { SCHEDULE, JOBS_LIST, UNSCHEDULE, RENAME, NUM_ACTIONS };
const char *ACTION_NAMES[NUM_ACTIONS] = {"schedule", "jobs", "unschedule", "rename"};
// The extra arguments ($4...) each action takes from the caller.
const int ACTION_ARGS[NUM_ACTIONS] = {3, 0, 1, 3};

// The statement of an action.  SCHEDULE: $4 job name, $5 schedule, $6
// command.  UNSCHEDULE: $4 the rollup.  RENAME: $4 the rollup, $5 its new
// name, $6 the new command.  Each returns one text.
const char *action_sql(Action a, bool remote) {
    switch (a) {
        case SCHEDULE:
            return remote ? "SELECT cron.schedule_in_database($4, $5, $6, $1)::text" : "SELECT cron.schedule($4, $5, $6)::text";
        case JOBS_LIST:
            return psprintf("SELECT coalesce(json_agg(x), '[]')::text FROM (%s) x WHERE x.rollup IS NOT NULL", JOBS);
        case UNSCHEDULE:
            return psprintf("SELECT count(*) FILTER (WHERE cron.unschedule(x.jobid))::text FROM (%s) x WHERE %s",
                            JOBS, OWN_JOBS_OF_4);
        case RENAME:
            // pg_cron lets no one but a superuser UPDATE cron.job: each job
            // is made again, under its new name, for the same role, as
            // active as it was (where pg_cron allows, else with cron.schedule;
            // a role is named only for a superuser's change to another's
            // job).  One transaction: a job is never lost half way.
            return psprintf(
                "WITH gone AS (SELECT x.*, cron.unschedule(x.jobid) AS removed FROM (%s) x WHERE %s)"
                " SELECT count(CASE WHEN NOT g.removed THEN NULL"
                "   WHEN has_function_privilege('cron.schedule_in_database(text, text, text, text, text, boolean)', 'EXECUTE')"
                "   THEN cron.schedule_in_database(%s, g.schedule, $6, $1,"
                "                                  nullif(g.username, current_user::text), g.active)"
                "   ELSE cron.schedule(%s, g.schedule, $6) END)::text FROM gone g",
                JOBS, OWN_JOBS_OF_4, RENAMED_JOB, RENAMED_JOB);
        default:
            elog(ERROR, "memoria: unknown pg_cron action %d", (int) a);
    }
}

// What travels between the caller and the worker.
constexpr int MAX_ARGS = 6;
constexpr int TEXT_MAX = 1024;
// How long a caller waits for pg_cron's database (a COMMIT waits too: no
// statement_timeout applies there), and what the worker allows itself.
constexpr long WAIT_MS = 60000;
const char *WORKER_LOCK_TIMEOUT = "10s";
const char *WORKER_STATEMENT_TIMEOUT = "30s";
struct CronCall {
    // asked
    Oid database;    // pg_cron's
    Oid login_role;  // connects as
    Oid role;        // then acts as (SET ROLE), if other than login_role
    int action;
    int arg_offset[MAX_ARGS];  // into data; -1: NULL
    int result_offset;
    int result_capacity;
    // answered
    bool answered;
    bool no_pg_cron;  // pg_cron is not created there
    bool failed;
    int sqlerrcode;
    char message[TEXT_MAX];
    char detail[TEXT_MAX];
    char hint[TEXT_MAX];
    char data[FLEXIBLE_ARRAY_MEMBER];
};

// The error a remote call ended with, to raise as an ERROR or a WARNING.
struct CallError {
    int elevel;  // 0: none
    bool no_pg_cron;  // pg_cron is not created in its database
    int sqlerrcode;
    char *message;
    char *detail;
    char *hint;
};

}  // namespace

// ----------------------------------------------------------------------------
// Where pg_cron is
// ----------------------------------------------------------------------------

// cron_database: the database pg_cron keeps its jobs in; NULL without pg_cron.
static char *cron_database(void) {
    const char *name = GetConfigOption("cron.database_name", true, false);
    if (name != NULL && name[0] != '\0') return pstrdup(name);
    // pg_cron created here but not preloaded: its catalog is still here.
    Oid cron = get_namespace_oid("cron", true);
    if (OidIsValid(cron) && OidIsValid(get_relname_relid("job", cron))) return get_database_name(MyDatabaseId);
    return NULL;
}

static bool is_local(const char *cron_db) {
    return strcmp(cron_db, get_database_name(MyDatabaseId)) == 0;
}

// ----------------------------------------------------------------------------
// Here: SPI in the caller's transaction, as the caller
// ----------------------------------------------------------------------------

static char *run_action(Action a, bool remote, Datum *args, const char *nulls) {
    Oid types[3 + MAX_ARGS];
    for (int i = 0; i < 3 + ACTION_ARGS[a]; i++) types[i] = TEXTOID;
    int ret = SPI_execute_with_args(action_sql(a, remote), 3 + ACTION_ARGS[a], types, args, nulls, false, 0);
    if (ret < 0) elog(ERROR, "memoria: pg_cron statement failed: %s", SPI_result_code_string(ret));
    if (SPI_processed == 0) return NULL;
    return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

static char *call_here(Action a, Datum *args, const char *nulls) {
    if (!OidIsValid(get_namespace_oid("cron", true)) || !OidIsValid(get_relname_relid("job", get_namespace_oid("cron", true)))) {
        if (a == JOBS_LIST) return pstrdup("[]");
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("pg_cron is not installed in this database"),
                        errhint("CREATE EXTENSION pg_cron in the database named by cron.database_name, or let "
                                "memoria's background worker refresh (shared_preload_libraries = 'memoria').")));
    }
    MemoryContext caller = CurrentMemoryContext;
    SPI_connect();
    char *result = run_action(a, false, args, nulls);
    MemoryContext spi = MemoryContextSwitchTo(caller);
    result = result ? pstrdup(result) : NULL;
    MemoryContextSwitchTo(spi);
    SPI_finish();
    return result;
}

// ----------------------------------------------------------------------------
// There: a background worker in pg_cron's database
// ----------------------------------------------------------------------------

static bool can_login(Oid role) {
    HeapTuple tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
    if (!HeapTupleIsValid(tuple)) return false;
    bool ok = ((Form_pg_authid) GETSTRUCT(tuple))->rolcanlogin;
    ReleaseSysCache(tuple);
    return ok;
}

static void put_text(char *dst, const char *src) {
    if (src == NULL) src = "";
    int len = pg_mbcliplen(src, strlen(src), TEXT_MAX - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

// call_there: run action a in pg_cron's database cron_db, as the caller.
// Returns the answer (NULL: none); an error is left in *err, not raised.
static char *call_there(const char *cron_db, Oid role, Action a, Datum *args, const char *nulls, CallError *err) {
    memset(err, 0, sizeof *err);
    Oid database = get_database_oid(cron_db, true);
    if (!OidIsValid(database)) {
        *err = {ERROR, false, ERRCODE_UNDEFINED_DATABASE, psprintf("database \"%s\" named by cron.database_name does not exist", cron_db),
                NULL, NULL};
        return NULL;
    }
    // Connect as the role itself, or as the session's login role that SET
    // ROLE to it: the worker has no other way in than a real login.
    Oid login = role;
    if (!can_login(role)) {
        Oid session = GetSessionUserId();
        if (session != role && can_login(session) && is_member_of_role(session, role)) login = session;
        else {
            *err = {ERROR, false, ERRCODE_INSUFFICIENT_PRIVILEGE,
                    psprintf("memoria cannot reach pg_cron's database \"%s\" as role \"%s\": the role cannot log in",
                             cron_db, GetUserNameFromId(role, false)),
                    NULL, pstrdup("Act as a role that can log in, or SET ROLE from one.")};
            return NULL;
        }
    }
    if (pg_database_aclcheck(database, login, ACL_CONNECT) != ACLCHECK_OK && !superuser_arg(login)) {
        *err = {ERROR, false, ERRCODE_INSUFFICIENT_PRIVILEGE,
                psprintf("role \"%s\" may not connect to database \"%s\", where pg_cron keeps its jobs",
                         GetUserNameFromId(login, false), cron_db),
                NULL, psprintf("GRANT CONNECT ON DATABASE %s TO %s;", quote_identifier(cron_db),
                               quote_identifier(GetUserNameFromId(login, false)))};
        return NULL;
    }

    int capacity = a == JOBS_LIST ? 4 * 1024 * 1024 : 1024;
    Size size = offsetof(CronCall, data) + capacity;
    for (int i = 0; i < 3 + ACTION_ARGS[a]; i++)
        if (nulls[i] != 'n') size += VARSIZE_ANY_EXHDR(DatumGetTextPP(args[i])) + 1;
    dsm_segment *seg = dsm_create(size, 0);
    CronCall *call = (CronCall *) dsm_segment_address(seg);
    memset(call, 0, offsetof(CronCall, data));
    call->database = database;
    call->login_role = login;
    call->role = role;
    call->action = a;
    int at = 0;
    for (int i = 0; i < MAX_ARGS; i++) call->arg_offset[i] = -1;
    for (int i = 0; i < 3 + ACTION_ARGS[a]; i++) {
        if (nulls[i] == 'n') continue;
        char *s = TextDatumGetCString(args[i]);
        call->arg_offset[i] = at;
        strcpy(call->data + at, s);
        at += strlen(s) + 1;
    }
    call->result_offset = at;
    call->result_capacity = capacity;

    BackgroundWorker w;
    memset(&w, 0, sizeof w);
    w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w.bgw_start_time = BgWorkerStart_ConsistentState;
    w.bgw_restart_time = BGW_NEVER_RESTART;
    strlcpy(w.bgw_library_name, "memoria", BGW_MAXLEN);
    strlcpy(w.bgw_function_name, "memoria_cron_main", BGW_MAXLEN);
    snprintf(w.bgw_name, BGW_MAXLEN, "memoria pg_cron %s", ACTION_NAMES[a]);
    strlcpy(w.bgw_type, "memoria pg_cron", BGW_MAXLEN);
    w.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
    w.bgw_notify_pid = MyProcPid;
    BackgroundWorkerHandle *handle;
    if (!RegisterDynamicBackgroundWorker(&w, &handle)) {
        dsm_detach(seg);
        *err = {ERROR, false, ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
                psprintf("memoria could not start a background worker to reach pg_cron's database \"%s\"", cron_db),
                NULL, pstrdup("Every max_worker_processes slot is in use; raise max_worker_processes.")};
        return NULL;
    }
    bool timed_out = false;
    PG_TRY();
    {
        TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), WAIT_MS);
        for (;;) {
            pid_t pid;
            CHECK_FOR_INTERRUPTS();
            if (GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED) break;
            long left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
            if (left <= 0) {
                TerminateBackgroundWorker(handle);
                timed_out = true;
                break;
            }
            (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left, PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
        }
    }
    PG_CATCH();
    {
        // A cancel: the worker must not act on for a caller that is gone.
        TerminateBackgroundWorker(handle);
        PG_RE_THROW();
    }
    PG_END_TRY();
    pg_read_barrier();

    char *result = NULL;
    if (timed_out) {
        *err = {ERROR, false, ERRCODE_QUERY_CANCELED,
                psprintf("memoria gave up waiting for pg_cron's database \"%s\" after %ld seconds", cron_db,
                         WAIT_MS / 1000),
                NULL, pstrdup("Something there holds a lock on cron.job; pg_stat_activity in that database says what.")};
    } else if (!call->answered) {
        *err = {ERROR, false, ERRCODE_CONNECTION_FAILURE,
                psprintf("memoria's background worker in pg_cron's database \"%s\" ended without answering", cron_db),
                NULL, pstrdup("The server log says why.")};
    } else if (call->no_pg_cron) {
        *err = {ERROR, true, ERRCODE_UNDEFINED_OBJECT,
                psprintf("pg_cron is not installed in database \"%s\", which cron.database_name names", cron_db), NULL,
                psprintf("CREATE EXTENSION pg_cron in database %s, or let memoria's background worker refresh "
                         "(shared_preload_libraries = 'memoria').", quote_identifier(cron_db))};
    } else if (call->failed) {
        const char *hint = call->hint[0] ? call->hint : NULL;
        if (call->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE)
            hint = psprintf("In database %s: GRANT USAGE ON SCHEMA cron TO %s; and, to schedule, GRANT EXECUTE ON "
                            "FUNCTION cron.schedule_in_database(text, text, text, text, text, boolean) TO %s;",
                            quote_identifier(cron_db), quote_identifier(GetUserNameFromId(role, false)),
                            quote_identifier(GetUserNameFromId(role, false)));
        *err = {ERROR, false, call->sqlerrcode, psprintf("pg_cron in database \"%s\": %s", cron_db, call->message),
                call->detail[0] ? pstrdup(call->detail) : NULL, hint ? pstrdup(hint) : NULL};
    } else if (call->result_offset >= 0) {
        result = pstrdup(call->data + call->result_offset);
    }
    dsm_detach(seg);
    return result;
}

static void report_call_error(const CallError *err, int elevel) {
    ereport(elevel, (errcode(err->sqlerrcode), errmsg("%s", err->message), err->detail ? errdetail("%s", err->detail) : 0,
                     err->hint ? errhint("%s", err->hint) : 0));
}

// ----------------------------------------------------------------------------
// Remote changes done at the caller's commit
// ----------------------------------------------------------------------------

struct Deferred {
    Action action;
    Oid role;
    SubTransactionId subxact;
    int nargs;
    char *args[3 + MAX_ARGS];  // NULL: SQL NULL
    Deferred *next;
};
static Deferred *deferred = NULL;  // in TopTransactionContext
static char *deferred_cron_db = NULL;
static bool callbacks_registered = false;

static void run_deferred(void) {
    // Pop first: an ERROR (a cancel) in here must not run them again.
    Deferred *list = deferred;
    deferred = NULL;
    // In the order they were queued (the list is newest first).
    Deferred *ordered = NULL;
    while (list) {
        Deferred *next = list->next;
        list->next = ordered;
        ordered = list;
        list = next;
    }
    for (Deferred *d = ordered; d; d = d->next) {
        Datum args[3 + MAX_ARGS];
        char nulls[3 + MAX_ARGS];
        for (int i = 0; i < d->nargs; i++) {
            nulls[i] = d->args[i] ? ' ' : 'n';
            args[i] = d->args[i] ? CStringGetTextDatum(d->args[i]) : (Datum) 0;
        }
        CallError err;
        (void) call_there(deferred_cron_db, d->role, d->action, args, nulls, &err);
        // The rollup's change stands; a job left behind is reported.
        if (err.elevel != 0 && !err.no_pg_cron) {
            err.hint = psprintf("Its pg_cron job in database %s may be left behind: check cron.job there.%s%s",
                                quote_identifier(deferred_cron_db), err.hint ? " " : "", err.hint ? err.hint : "");
            report_call_error(&err, WARNING);
        }
    }
}

static void cron_xact_callback(XactEvent event, void *) {
    switch (event) {
        case XACT_EVENT_PRE_COMMIT:
            if (deferred) run_deferred();
            break;
        case XACT_EVENT_PRE_PREPARE:
            if (deferred)
                ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                                errmsg("cannot PREPARE a transaction that renames or drops a rollup scheduled by pg_cron "
                                       "in another database")));
            break;
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_COMMIT:
        case XACT_EVENT_PARALLEL_ABORT:
        case XACT_EVENT_PREPARE:
            deferred = NULL;  // freed with TopTransactionContext
            deferred_cron_db = NULL;
            break;
        default:
            break;
    }
}

static void cron_subxact_callback(SubXactEvent event, SubTransactionId sub, SubTransactionId, void *) {
    if (event != SUBXACT_EVENT_ABORT_SUB) return;
    // Everything queued since the aborted subtransaction began goes with it.
    Deferred **link = &deferred;
    while (*link) {
        if ((*link)->subxact >= sub) *link = (*link)->next;
        else link = &(*link)->next;
    }
}

static void defer(const char *cron_db, Action a, Datum *args, const char *nulls) {
    if (!callbacks_registered) {
        RegisterXactCallback(cron_xact_callback, NULL);
        RegisterSubXactCallback(cron_subxact_callback, NULL);
        callbacks_registered = true;
    }
    MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
    Deferred *d = (Deferred *) palloc0(sizeof(Deferred));
    d->action = a;
    d->role = GetOuterUserId();  // the caller, not memoria's catalog session
    d->subxact = GetCurrentSubTransactionId();
    d->nargs = 3 + ACTION_ARGS[a];
    for (int i = 0; i < d->nargs; i++) d->args[i] = nulls[i] == 'n' ? NULL : TextDatumGetCString(args[i]);
    d->next = deferred;
    deferred = d;
    if (deferred_cron_db == NULL) deferred_cron_db = pstrdup(cron_db);
    MemoryContextSwitchTo(old);
}

}  // namespace memoria

using namespace memoria;

// The worker: connect, act, answer, leave.  Errors are handed back, not
// raised: the caller reports them.
void memoria_cron_main(Datum arg) {
    using namespace memoria;
    pqsignal(SIGTERM, die);  // at CHECK_FOR_INTERRUPTS, not inside the handler
    BackgroundWorkerUnblockSignals();
    dsm_segment *seg = dsm_attach(DatumGetUInt32(arg));
    if (seg == NULL) ereport(ERROR, (errmsg("memoria: the caller asking pg_cron left before its worker started")));
    CronCall *call = (CronCall *) dsm_segment_address(seg);
    BackgroundWorkerInitializeConnectionByOid(call->database, call->login_role, 0);
    SetConfigOption("application_name", "memoria pg_cron", PGC_USERSET, PGC_S_SESSION);
    // Only built-in names and cron.*: nothing of another role's in between.
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION);
    SetConfigOption("lock_timeout", WORKER_LOCK_TIMEOUT, PGC_USERSET, PGC_S_SESSION);
    SetConfigOption("statement_timeout", WORKER_STATEMENT_TIMEOUT, PGC_USERSET, PGC_S_SESSION);
    pgstat_report_appname("memoria pg_cron");

    Datum args[3 + MAX_ARGS];
    char nulls[3 + MAX_ARGS];
    Action a = (Action) call->action;
    for (int i = 0; i < 3 + ACTION_ARGS[a]; i++) {
        nulls[i] = call->arg_offset[i] < 0 ? 'n' : ' ';
        args[i] = call->arg_offset[i] < 0 ? (Datum) 0 : CStringGetTextDatum(call->data + call->arg_offset[i]);
    }
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    MemoryContext outer = CurrentMemoryContext;
    PG_TRY();
    {
        if (call->role != call->login_role)
            SetConfigOption("role", GetUserNameFromId(call->role, false), PGC_SUSET, PGC_S_SESSION);
        PushActiveSnapshot(GetTransactionSnapshot());
        Oid cron = get_namespace_oid("cron", true);
        call->no_pg_cron = !OidIsValid(cron) || !OidIsValid(get_relname_relid("job", cron));
        if (call->no_pg_cron) elog(ERROR, "pg_cron is not installed in this database");
        pgstat_report_activity(STATE_RUNNING, action_sql(a, true));
        SPI_connect();
        char *result = run_action(a, true, args, nulls);
        if (result == NULL) {
            call->result_offset = -1;
        } else if ((int) strlen(result) >= call->result_capacity) {
            ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                            errmsg("too many pg_cron jobs to list (%d bytes)", (int) strlen(result))));
        } else {
            strlcpy(call->data + call->result_offset, result, call->result_capacity);
        }
        SPI_finish();
        PopActiveSnapshot();
        CommitTransactionCommand();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(outer);
        ErrorData *e = CopyErrorData();
        FlushErrorState();
        call->failed = true;
        call->sqlerrcode = e->sqlerrcode;
        put_text(call->message, e->message);
        put_text(call->detail, e->detail);
        put_text(call->hint, e->hint);
        AbortCurrentTransaction();
    }
    PG_END_TRY();
    pg_write_barrier();
    call->answered = true;
    pgstat_report_activity(STATE_IDLE, NULL);
    dsm_detach(seg);
    proc_exit(0);
}

// memoria_internal.cron_database(): the database pg_cron keeps its jobs in
// (NULL without pg_cron).
MEMORIA_FUNCTION(memoria_cron_database) {
    char *db = cron_database();
    if (db == NULL) PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(db));
}

// memoria_internal.cron_call(action, args, mode): one of the actions above,
// here or in pg_cron's database.  mode: 'now' (errors raised), 'quiet'
// (errors: NULL, for memoria.status) or 'at_commit' (remote changes queued
// until the caller commits).
MEMORIA_FUNCTION(memoria_cron_call) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2)) PG_RETURN_NULL();
    char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
    char *mode = text_to_cstring(PG_GETARG_TEXT_PP(2));
    int a = 0;
    while (a < NUM_ACTIONS && strcmp(ACTION_NAMES[a], name) != 0) a++;
    if (a == NUM_ACTIONS) elog(ERROR, "memoria: unknown pg_cron action \"%s\"", name);
    Action action = (Action) a;
    bool quiet = strcmp(mode, "quiet") == 0;
    bool at_commit = strcmp(mode, "at_commit") == 0;

    char *cron_db = cron_database();
    if (cron_db == NULL) {
        if (action == JOBS_LIST) PG_RETURN_TEXT_P(cstring_to_text("[]"));
        if (quiet || at_commit) PG_RETURN_NULL();
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("pg_cron is not installed"),
                        errhint("Add pg_cron to shared_preload_libraries and CREATE EXTENSION pg_cron in the database "
                                "named by cron.database_name, or let memoria's background worker refresh "
                                "(shared_preload_libraries = 'memoria').")));
    }
    bool remote = !is_local(cron_db);
    // Code running as someone else in a sandbox (an index expression, a
    // rollup's measure) must not act in pg_cron's catalog.
    if (InSecurityRestrictedOperation()) {
        if (quiet) PG_RETURN_NULL();
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("cannot change pg_cron jobs within a security-restricted operation")));
    }

    int nelems;
    Datum *elems;
    bool *elem_nulls;
    deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT, &elems, &elem_nulls, &nelems);
    if (nelems != ACTION_ARGS[action])
        elog(ERROR, "memoria: pg_cron action \"%s\" takes %d arguments", name, ACTION_ARGS[action]);
    Datum args[3 + MAX_ARGS];
    char nulls[3 + MAX_ARGS];
    char *database = get_database_name(MyDatabaseId);
    args[0] = CStringGetTextDatum(database);
    args[1] = CStringGetTextDatum(remote ? psprintf("@%s", database) : "");
    args[2] = CStringGetTextDatum(COMMAND_PATTERN);
    nulls[0] = nulls[1] = nulls[2] = ' ';
    for (int i = 0; i < nelems; i++) {
        args[3 + i] = elems[i];
        nulls[3 + i] = elem_nulls[i] ? 'n' : ' ';
    }

    // What follows a drop or rename acts as the caller (the catalog session
    // runs as the extension's owner): only the caller's own jobs change.
    if (at_commit && remote) {
        if (!RecoveryInProgress()) defer(cron_db, action, args, nulls);
        PG_RETURN_NULL();
    }
    if (at_commit) {
        Oid cron = get_namespace_oid("cron", true);
        if (!OidIsValid(cron) || !OidIsValid(get_relname_relid("job", cron))) PG_RETURN_NULL();
        SavedUser saved = become_user(GetOuterUserId());
        char *result = call_here(action, args, nulls);
        restore_user(saved);
        if (result == NULL) PG_RETURN_NULL();
        PG_RETURN_TEXT_P(cstring_to_text(result));
    }

    // One listing per statement and role: memoria.status read row by row
    // (lag() over it, a correlated sub-query) must not start a worker each.
    static struct {
        Oid role;
        TimestampTz statement;
        LocalTransactionId xact;
        char *jobs;  // in TopMemoryContext
    } listed = {InvalidOid, 0, InvalidLocalTransactionId, NULL};
    if (action == JOBS_LIST && listed.jobs != NULL && listed.role == GetUserId() &&
        listed.statement == GetCurrentStatementStartTimestamp() && listed.xact == MyProc->lxid)
        PG_RETURN_TEXT_P(cstring_to_text(listed.jobs));

    if (action != JOBS_LIST && listed.jobs != NULL) {  // the jobs change
        pfree(listed.jobs);
        listed.jobs = NULL;
    }
    char *result;
    if (!remote && !quiet) {
        result = call_here(action, args, nulls);
    } else if (!remote) {
        struct Job {
            Action action;
            Datum *args;
            char *nulls;
            char *result;
        } job = {action, args, nulls, NULL};
        auto body = [](void *arg) {
            Job *j = (Job *) arg;
            j->result = call_here(j->action, j->args, j->nulls);
        };
        result = try_in_subtransaction(body, &job) == NULL ? job.result : NULL;
    } else {
        CallError err;
        result = call_there(cron_db, GetUserId(), action, args, nulls, &err);
        if (err.elevel != 0) {
            if (action == JOBS_LIST && err.no_pg_cron) result = pstrdup("[]");  // no pg_cron there: no jobs
            else if (quiet) PG_RETURN_NULL();
            else report_call_error(&err, ERROR);
        }
    }
    if (result == NULL) PG_RETURN_NULL();
    if (action == JOBS_LIST) {
        if (listed.jobs) pfree(listed.jobs);
        listed.jobs = MemoryContextStrdup(TopMemoryContext, result);
        listed.role = GetUserId();
        listed.statement = GetCurrentStatementStartTimestamp();
        listed.xact = MyProc->lxid;
    }
    PG_RETURN_TEXT_P(cstring_to_text(result));
}

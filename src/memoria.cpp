// memoria.cpp: the module's entry point.  _PG_init defines the GUCs and
// registers the capture callbacks and the worker; everything else lives in
// one file per concern (docs/design.md has the map).
#include "additive.hpp"
#include "capture.hpp"
#include "guard.hpp"
#include "worker.hpp"

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

namespace memoria {
int batch_keys = 10000;
bool worker_enabled = true;
int naptime_seconds = 10;
int max_workers = 3;
char *databases = NULL;
bool preloaded = false;
bool writing_rollup = false;
bool additive_path = true;
static int citus_node_connections = 1;
}  // namespace memoria

using namespace memoria;

void _PG_init(void) {
    DefineCustomIntVariable("memoria.batch_keys", "Dirty keys refreshed per transaction by memoria.run() and the worker.",
                            "Range 1 to 100000000; default 10000.", &batch_keys, 10000, 1, 100000000, PGC_USERSET, 0,
                            NULL, NULL, NULL);
    DefineCustomBoolVariable("memoria.enabled", "Whether the background worker refreshes rollups.",
                             "Reloadable (SIGHUP); default on.", &worker_enabled, true, PGC_SIGHUP, 0, NULL, NULL,
                             NULL);
    DefineCustomIntVariable("memoria.naptime", "Seconds the background worker sleeps between rounds.",
                            "Range 1 to 3600; default 10; reloadable (SIGHUP).", &naptime_seconds, 10, 1, 3600,
                            PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
    // Read by the coordinator's fan-out (sql/src/citus.sql, citus_fan_out).
    DefineCustomIntVariable("memoria.citus_node_connections",
                            "Connections an incremental refresh of a distributed rollup opens to each Citus node "
                            "(its shard groups there are refreshed in turn over them; 0: one per shard group).",
                            "Range 0 to 1000; default 1.", &citus_node_connections, 1, 0, 1000, PGC_USERSET, 0, NULL,
                            NULL, NULL);
    DefineCustomBoolVariable("memoria.additive_path",
                             "Whether inserts into a rollup's source fold into partial aggregates that a refresh adds "
                             "to the rollup (off: they dirty their keys, which a refresh recomputes).",
                             "Default on; either way the rollup is exact.", &additive_path, true, PGC_USERSET, 0, NULL,
                             NULL, NULL);
    preloaded = process_shared_preload_libraries_in_progress;
    // A PGC_POSTMASTER variable can only be defined while preloading (later
    // it is FATAL); without preloading there is no worker for it to size.
    if (preloaded)
        DefineCustomIntVariable("memoria.max_workers", "Most databases refreshed at once by background workers.",
                                "Range 1 to 64; default 3; needs a restart.", &max_workers, 3, 1, 64, PGC_POSTMASTER,
                                0, NULL, NULL, NULL);
    DefineCustomStringVariable("memoria.databases", "Comma-separated databases the worker may serve (empty: all).",
                               "Reloadable (SIGHUP); default empty.", &databases, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
    // On only inside memoria's rollup sessions (session.cpp), where the
    // guard trigger lets memoria's statements write a rollup table; a GUC,
    // so that an ERROR resets it with the rest of the session's settings.
    DefineCustomBoolVariable("memoria.writing_rollup", "Internal: memoria itself is writing a rollup table.", NULL,
                             &writing_rollup, false, PGC_SUSET,
                             GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE | GUC_NO_RESET_ALL, NULL,
                             NULL, NULL);
    MarkGUCPrefixReserved("memoria");
    init_capture();
    if (preloaded) register_launcher();
}

MEMORIA_FUNCTION(memoria_worker_preloaded) {
    PG_RETURN_BOOL(preloaded);
}

// memoria_internal.relation_owner(rel): its owner, NULL if it does not exist.
// (From the system cache: Citus hides its shards from queries of pg_class,
// so a shard's rollup would vanish from memoria.status.)
MEMORIA_FUNCTION(memoria_relation_owner) {
    HeapTuple tup = SearchSysCache1(RELOID, PG_GETARG_DATUM(0));
    if (!HeapTupleIsValid(tup)) PG_RETURN_NULL();
    Oid owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
    ReleaseSysCache(tup);
    PG_RETURN_OID(owner);
}

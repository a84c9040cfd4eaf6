// worker.hpp: the background worker (launcher + one worker per database).
#pragma once
#include "pg.hpp"

namespace memoria {

// GUCs (memoria.cpp)
extern int batch_keys;
extern bool worker_enabled;
extern int naptime_seconds;
extern int max_workers;
extern char *databases;

// register_launcher: register the launcher and its shared memory (from
// _PG_init, when preloaded).
void register_launcher(void);

// wake_worker_pool_at_commit: this database has new work for the pool
// (CREATE EXTENSION, a new rollup, a new refresh_interval): once this
// transaction commits, the launcher looks at it rather than waiting for its
// next due time.  A no-op without the pool.
void wake_worker_pool_at_commit(void);

}  // namespace memoria

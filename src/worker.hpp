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

// register_launcher: register the launcher (from _PG_init, when preloaded).
void register_launcher(void);

}  // namespace memoria

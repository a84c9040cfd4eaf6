// capture.hpp: dirty-key capture on the write path.
#pragma once
#include "pg.hpp"

namespace memoria {

// init_capture: register the transaction and relcache callbacks (from _PG_init).
void init_capture(void);

// flush_pending_keys: write this backend's pending dirty keys to the logs now
// (refresh calls it, so that it sees the caller's own earlier writes).
void flush_pending_keys(void);

}  // namespace memoria

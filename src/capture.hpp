// capture.hpp: dirty-key capture on the write path.
#pragma once
#include "pg.hpp"

namespace memoria {

// init_capture: register the transaction and relcache callbacks (from _PG_init).
void init_capture(void);

// flush_pending_keys: write this backend's pending dirty keys to the logs now
// (refresh calls it, so that it sees the caller's own earlier writes).
void flush_pending_keys(void);

// Number of trigger arguments before the scope attribute numbers.
constexpr int CAPTURE_FIXED_ARGS = 6;

// Last trigger argument of a trigger-mode rollup whose inserts are captured
// by a statement trigger (plain tables; see capture.cpp).
constexpr const char *CAPTURE_STATEMENT_INSERTS = "statement_inserts";

}  // namespace memoria

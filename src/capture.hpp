// capture.hpp: dirty-key capture on the write path.
#pragma once
#include "pg.hpp"

namespace memoria {

// init_capture: register the transaction and relcache callbacks (from _PG_init).
void init_capture(void);

// Number of trigger arguments before the scope attribute numbers.
constexpr int CAPTURE_FIXED_ARGS = 6;

}  // namespace memoria

// capture.hpp: dirty-key capture on the write path.
#pragma once
#include "pg.hpp"

namespace memoria {

// init_capture: register the relcache and transaction callbacks (from
// _PG_init).
void init_capture(void);

}  // namespace memoria

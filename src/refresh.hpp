// refresh.hpp: refreshing a rollup from inside another of memoria's
// functions (refresh.cpp).
#pragma once
#include "catalog.hpp"

namespace memoria {

// refresh_now: recompute every pending key of the rollup now (its lock held
// or free); returns NULL, or the refresh's error.  *keys: how many.
const char *refresh_now(const Rollup *r, int64 *keys);

}  // namespace memoria

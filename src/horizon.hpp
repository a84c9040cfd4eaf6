// horizon.hpp: how far an updated_at scan may go (invalidation => 'updated_at').
#pragma once
#include "catalog.hpp"

namespace memoria {

// updated_at_horizon: the highest updated_at value a scan may cover now, so
// that no transaction can still commit a row at or below it.  Returns false
// when the scan must not move at all this time (see horizon.cpp).
// at_create: called by create_rollup, after it locked the source.
bool updated_at_horizon(const Rollup *r, bool at_create, TimestampTz *horizon);

}  // namespace memoria

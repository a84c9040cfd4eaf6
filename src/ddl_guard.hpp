// ddl_guard.hpp: what must stay true of a rollup's source and functions
// after DDL (checked at create_rollup and after every change).
#pragma once
#include "catalog.hpp"

namespace memoria {

// source_problem: why memoria could not capture every change of the source
// table, or NULL (then *hint says what to do).
char *source_problem(Oid source, const char **hint);

}  // namespace memoria

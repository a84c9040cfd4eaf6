// guard.cpp: turning a C++ exception caught at the boundary into an ERROR.
#include <new>
#include <exception>
#include "guard.hpp"

namespace memoria {

void raise_cpp_error(int sqlstate, const char *what) {
    ereport(ERROR, (errcode(sqlstate), errmsg("memoria internal error: %s", what),
                    errhint("This is a bug in memoria; please report it.")));
    pg_unreachable();
}

}  // namespace memoria

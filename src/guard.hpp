// guard.hpp: the C++/PostgreSQL boundary for SQL-callable functions.
//
// Every function PostgreSQL calls is written as
//     MEMORIA_FUNCTION(memoria_refresh) { ...body returning Datum... }
// which declares the extern "C" V1 function and runs the body inside
// run_guarded(): a C++ exception cannot leave it.  The exception is caught,
// its text copied to a plain buffer, the handler left (so the exception object
// is destroyed), and only then is a PostgreSQL ERROR raised.
//
// PostgreSQL ERRORs raised inside the body longjmp straight out through the
// try block; that is well defined because, by the rule in pg.hpp, no frame in
// between holds an object with a destructor.
#pragma once
#include <exception>
#include <new>

#include "pg.hpp"

namespace memoria {

// raise_cpp_error: report a C++ exception caught at the boundary as an ERROR.
[[noreturn]] void raise_cpp_error(int sqlstate, const char *what);

template <typename Body>
Datum run_guarded(FunctionCallInfo fcinfo, Body body) {
    int sqlstate = 0;
    char what[256];
    try {
        return body(fcinfo);
    } catch (const std::bad_alloc &) {
        sqlstate = ERRCODE_OUT_OF_MEMORY;
        strlcpy(what, "out of memory", sizeof what);
    } catch (const std::exception &e) {
        sqlstate = ERRCODE_INTERNAL_ERROR;
        strlcpy(what, e.what(), sizeof what);
    } catch (...) {
        sqlstate = ERRCODE_INTERNAL_ERROR;
        strlcpy(what, "unknown C++ exception", sizeof what);
    }
    raise_cpp_error(sqlstate, what);
}

}  // namespace memoria

// MEMORIA_ASSERT: an invariant of memoria's own, checked in builds with
// CHECKS=1 (make CHECKS=1; CI builds so), compiled out otherwise.
#ifdef MEMORIA_CHECKS
#define MEMORIA_ASSERT(cond)                                                                     \
    do {                                                                                         \
        if (!(cond)) elog(ERROR, "memoria: assertion failed: %s (%s:%d)", #cond, __FILE__, __LINE__); \
    } while (0)
#else
#define MEMORIA_ASSERT(cond) ((void) 0)
#endif

#define MEMORIA_FUNCTION(fname)                                              \
    static Datum fname##_body(FunctionCallInfo fcinfo);                      \
    extern "C" {                                                             \
    PG_FUNCTION_INFO_V1(fname);                                              \
    Datum fname(PG_FUNCTION_ARGS) {                                          \
        return memoria::run_guarded(fcinfo, fname##_body);                   \
    }                                                                        \
    }                                                                        \
    static Datum fname##_body(FunctionCallInfo fcinfo)

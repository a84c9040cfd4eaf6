// verify.cpp: memoria.verify() (rollup rows that differ from a fresh
// aggregation of the source) and memoria._pending_keys() (for status).
#include "citus.hpp"
#include "guard.hpp"
#include "statements.hpp"
#include "args.hpp"

using namespace memoria;

MEMORIA_FUNCTION(memoria_verify) {
    const char *name = name_arg(fcinfo);
    if (citus_rollup_exists(name)) return citus_forward(fcinfo, "citus_verify");
    TimestampTz ws, we;
    window_args(fcinfo, &ws, &we);
    Rollup *r = load_rollup(name);
    bool include_frozen = PG_NARGS() > 3 && !PG_ARGISNULL(3) && PG_GETARG_BOOL(3);  // (3 before 0.4.0)
    Datum first, last;
    window_buckets(r, ws, we, &first, &last);
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    // Frozen buckets may have lost their raw rows: skipped unless asked.
    if (!include_frozen && !clamp_to_unfrozen(r, &first, last)) return (Datum) 0;
    Params p = window_params(r, first, last);
    SPI_connect();
    RollupSession session = enter_rollup_session(r);
    spi_exec(verify_sql(r), p.n, p.types, p.values, NULL, true);
    for (uint64 i = 0; i < SPI_processed; i++) {
        Datum v[4];
        bool n[4];
        heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, v, n);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
    }
    leave_rollup_session(session);
    SPI_finish();
    return (Datum) 0;
}

// memoria_internal.pending_keys(id): distinct keys in the dirty log, NULL if
// the caller may not see the rollup (its owner's members and pg_monitor's do).  Counted as the rollup's owner: telling
// keys apart runs their types' equality, which is the owner's code to run.
MEMORIA_FUNCTION(memoria_pending_keys) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL || !can_observe(r->owner) || get_rel_name(r->dirty_log) == NULL) PG_RETURN_NULL();
    SPI_connect();
    RollupSession session = enter_rollup_session(r);
    spi_exec(pending_keys_sql(r), 0, NULL, NULL, NULL, true);
    int64 n = spi_int64(1);
    leave_rollup_session(session);
    SPI_finish();
    PG_RETURN_INT64(n);
}

// memoria_internal.frozen_before(id): the first bucket not frozen, as text
// (NULL: nothing frozen, or a rollup the caller may not see).
MEMORIA_FUNCTION(memoria_frozen_before) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    Datum open;
    if (r == NULL || !can_observe(r->owner) || !frozen_before(r, &open)) PG_RETURN_NULL();
    Oid out;
    bool varlena;
    getTypeOutputInfo(r->time_type, &out, &varlena);
    PG_RETURN_TEXT_P(cstring_to_text(OidOutputFunctionCall(out, open)));
}

// alter.cpp: memoria.alter_rollup(): change a rollup in place -- its name,
// refresh interval, what is frozen, its measures -- one row per step.  Every
// argument is checked and every step done in a subtransaction; dry_run rolls
// it back, so its report is exactly what the real run would do, and changes
// nothing.  Bucket, dimension, scope or filter changes need a new rollup.
#include "citus.hpp"
#include "additive.hpp"
#include "adopt.hpp"
#include "args.hpp"
#include "expressions.hpp"
#include "guard.hpp"
#include "refresh.hpp"
#include "statements.hpp"
#include "triggers.hpp"
#include "worker.hpp"

namespace memoria {

struct Step {
    char *action;
    char *detail;
};

// Alteration: alter_rollup's arguments, and the steps done.
struct Alteration {
    Rollup *r;
    bool has_interval, has_freeze;
    Interval interval, freeze;
    List *add;     // measure texts
    List *drop;    // measure aliases
    char *rename;  // or NULL
    bool dry_run;
    List *steps;   // of Step *, in `mcxt`
    MemoryContext mcxt;
};

static void add_step(Alteration *a, const char *action, const char *detail) {
    MemoryContext old = MemoryContextSwitchTo(a->mcxt);
    Step *s = (Step *) palloc(sizeof(Step));
    s->action = pstrdup(action);
    s->detail = pstrdup(detail);
    a->steps = lappend(a->steps, s);
    MemoryContextSwitchTo(old);
}

// count_rows: rollup rows and buckets before (or from) bucket `edge`, or
// all of them without one; read as the rollup's owner.
static void count_rows(const Rollup *r, const Datum *edge, bool before, int64 *rows, int64 *buckets) {
    char *b = column_name(r->target, r->target_attnums[0]);
    char *sql = psprintf("SELECT count(*), count(DISTINCT %s) FROM %s%s", b, qualified_relation_name(r->target),
                         edge == NULL ? "" : psprintf(" WHERE %s %s $1", b, before ? "<" : ">="));
    Oid type = r->time_type;
    SPI_connect();
    RollupSession session = enter_rollup_session(r);
    spi_exec(sql, edge ? 1 : 0, &type, const_cast<Datum *>(edge), NULL, false);
    *rows = spi_int64(1);
    *buckets = spi_int64(2);
    leave_rollup_session(session);
    SPI_finish();
}

static char *datum_text(Oid type, Datum d) {
    Oid out;
    bool varlena;
    getTypeOutputInfo(type, &out, &varlena);
    return OidOutputFunctionCall(out, d);
}

// has_cron_job: whether pg_cron (here or in its own database) has a job of
// the rollup that the caller can see.
static bool has_cron_job(const char *name) {
    Oid type = TEXTOID;
    Datum value = CStringGetTextDatum(name);
    SPI_connect();
    spi_exec("SELECT EXISTS (SELECT 1 FROM memoria_internal.cron_jobs() j WHERE j.rollup = $1)", 1, &type, &value,
             NULL, false);
    bool found = spi_bool(1);
    SPI_finish();
    return found;
}

static void rename(Alteration *a) {
    Rollup *r = a->r;
    if (a->rename[0] == '\0' || strlen(a->rename) >= NAMEDATALEN - 1)
        arg_error(ERRCODE_INVALID_NAME, psprintf("rename_to \"%s\" must be 1 to %d bytes long", a->rename,
                                                 NAMEDATALEN - 2),
                  "A rollup's name is an identifier; its table keeps its own name.");
    if (rollup_name_taken(a->rename))
        arg_error(ERRCODE_DUPLICATE_OBJECT, psprintf("rename_to: rollup \"%s\" already exists", a->rename),
                  "Choose another name.");
    bool cron = has_cron_job(r->name);
    rename_rollup(r->id, a->rename);  // the catalog's trigger renames the pg_cron job
    add_step(a, "rename", psprintf("rollup \"%s\" becomes \"%s\"%s; its table stays %s", r->name, a->rename,
                                   cron ? ", its pg_cron jobs with it" : "",
                                   qualified_relation_name(r->target)));
    r->name = a->rename;
}

static void set_interval(Alteration *a) {
    Interval *every = &a->interval;
    if (every->month < 0 || every->day < 0 || every->time < 0 ||
        (every->month == 0 && every->day == 0 && every->time < USECS_PER_SEC))
        arg_error(ERRCODE_INVALID_PARAMETER_VALUE, "refresh_interval must be at least 1 second",
                  "For example refresh_interval => '5 minutes'.");
    set_refresh_interval(a->r->id, every);
    wake_worker_pool_at_commit();  // a shorter interval may make it due sooner
    add_step(a, "refresh_interval",
             psprintf("refreshed every %s", DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(every)))));
}

static void set_freeze(Alteration *a) {
    Interval *f = &a->freeze;
    if (f->month < 0 || f->day < 0 || f->time < 0 || (f->month == 0 && f->day == 0 && f->time == 0))
        arg_error(ERRCODE_INVALID_PARAMETER_VALUE, "freeze_after must be a positive interval",
                  "Buckets that ended longer ago than freeze_after never change again; to freeze less, give a longer "
                  "one (frozen buckets cannot be thawed: their raw rows may be gone).");
    Rollup *r = a->r;
    // Shortening only: buckets once frozen may have lost their raw rows.
    if (r->has_freeze) {
        Datum was, now;
        (void) frozen_before(r, &was);
        Rollup longer = *r;
        longer.freeze_after = *f;
        (void) frozen_before(&longer, &now);
        if (time_less(r, now, was))
            arg_error(ERRCODE_INVALID_PARAMETER_VALUE,
                      "freeze_after would thaw frozen buckets (their raw rows may be gone)",
                      psprintf("Buckets before %s are frozen now; a freeze_after of at most %s keeps them frozen.",
                               datum_text(r->time_type, was),
                               DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(&r->freeze_after)))));
    }
    // Writes made while a bucket was live are applied before it freezes.
    int64 keys;
    if (const char *error = refresh_now(r, &keys))
        arg_error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                  psprintf("freeze_after: pending keys must be applied before their buckets freeze, and the refresh "
                           "failed: %s", error),
                  "See memoria.status; once the rollup refreshes, alter it again.");
    if (keys > 0)
        add_step(a, "refresh", psprintf("%lld pending keys applied first, so that no write made before freezing is lost",
                                        (long long) keys));
    set_freeze_after(r->id, f);
    r->has_freeze = true;
    r->freeze_after = *f;
    Datum open;
    (void) frozen_before(r, &open);
    int64 rows, buckets;
    count_rows(r, &open, true, &rows, &buckets);
    add_step(a, "freeze_after",
             psprintf("buckets before %s are frozen: %lld rollup rows in %lld buckets never change again, and writes "
                      "to their raw rows are discarded",
                      datum_text(r->time_type, open), (long long) rows, (long long) buckets));
}

// has_string: whether the list of C strings holds s.
static bool has_string(List *l, const char *s) {
    ListCell *lc;
    foreach (lc, l)
        if (strcmp((const char *) lfirst(lc), s) == 0) return true;
    return false;
}

static int measure_index(const Rollup *r, const char *alias) {
    for (int i = 0; i < r->nmeasures; i++)
        if (strcmp(r->measure_names[i], alias) == 0) return i;
    return -1;
}

static void change_measures(Alteration *a) {
    Rollup *r = a->r;
    char *table = qualified_relation_name(r->target);
    List *texts = NIL, *names = NIL;
    for (int i = 0; i < r->nmeasures; i++)
        if (!has_string(a->drop, r->measure_names[i])) {
            texts = lappend(texts, r->measures[i]);
            names = lappend(names, r->measure_names[i]);
        }
    drop_live_view(r);  // it reads every measure column; made again below
    int k = 0;
    ListCell *lc;
    foreach (lc, a->drop) {
        const char *alias = (const char *) lfirst(lc);
        k++;
        int i = measure_index(r, alias);
        if (i < 0)
            arg_error(ERRCODE_UNDEFINED_COLUMN,
                      psprintf("drop_measures[%d]: rollup \"%s\" has no measure \"%s\"", k, r->name, alias),
                      "See SELECT measures FROM memoria.rollups_info.");
        run_own_ddl(psprintf("ALTER TABLE %s DROP COLUMN %s", table,
                             column_name(r->target, r->target_attnums[1 + r->ndims + i])),
                    r->owner);
        add_step(a, "drop_measures", psprintf("column %s of %s is dropped", quote_identifier(alias), table));
    }
    // New measures mean what the others mean: the rollup's search_path and
    // settings, as its owner.
    k = 0;
    foreach (lc, a->add) {
        const char *text = (const char *) lfirst(lc);
        k++;
        RollupSession session = enter_rollup_session(r);
        Measure m = check_measure(text, k, qualified_relation_name(r->source), "add_measures");
        leave_rollup_session(session);
        // Another new measure's alias, or a column of the table now (its
        // columns may have been renamed).
        bool clash = has_string(names, m.alias) || get_attnum(r->target, m.alias) != InvalidAttrNumber;
        if (clash)
            arg_error(ERRCODE_DUPLICATE_COLUMN,
                      psprintf("add_measures[%d]: alias \"%s\" is already used by the bucket, a dimension or another "
                               "measure", k, m.alias),
                      "Give every measure its own alias.");
        // As the owner: a domain's DEFAULT runs for every row, with the
        // owner's rights only.
        run_own_ddl(psprintf("ALTER TABLE %s ADD COLUMN %s %s", table, quote_identifier(m.alias),
                             format_type_with_typemod(m.type, m.typmod)),
                    r->owner);
        run_own_ddl(psprintf("COMMENT ON COLUMN %s.%s IS %s", table, quote_identifier(m.alias),
                             quote_literal_cstr(psprintf("memoria measure: %s", text))),
                    r->owner);
        add_step(a, "add_measures", psprintf("column %s %s is added to %s (NULL until recomputed)",
                                             quote_identifier(m.alias), format_type_with_typemod(m.type, m.typmod),
                                             table));
        texts = lappend(texts, m.text);
        names = lappend(names, m.alias);
    }
    if (names == NIL)
        arg_error(ERRCODE_INVALID_PARAMETER_VALUE, "drop_measures would leave the rollup without a measure",
                  "Add one with add_measures in the same call, or drop the rollup.");
    set_measures(r->id, texts, names);
    CommandCounterIncrement();
    Rollup *now = find_rollup_by_id(r->id);
    if (char *problem = expressions_problem(now))
        arg_error(ERRCODE_INVALID_PARAMETER_VALUE, psprintf("add_measures: the rollup's %s", problem), NULL);
    record_function_dependencies(now);
    // The additive path's partials are of the old measures: the log is
    // made again for the new ones (or goes), with writers held off.
    settle_delta_log(now, false);
    if (live_view_name(now, true) != NULL) create_live_view(now);
    if (a->add == NIL) return;
    // The new columns are filled by a backfill; refresh keeps every column
    // of the keys it recomputes meanwhile.
    mark_needs_backfill(r->id);
    Datum open;
    bool frozen = frozen_before(r, &open);
    int64 rows, buckets;
    count_rows(r, frozen ? &open : NULL, false, &rows, &buckets);
    add_step(a, "backfill",
             psprintf("%lld buckets (%lld rollup rows) to recompute: CALL memoria.backfill('%s') fills them slice "
                      "by slice, resumable%s",
                      (long long) buckets, (long long) rows, r->name,
                      frozen ? psprintf("; frozen buckets (before %s) keep NULL", datum_text(r->time_type, open))
                             : ""));
}

static void apply(void *arg) {
    Alteration *a = (Alteration *) arg;
    if (a->rename) rename(a);
    if (a->has_interval) set_interval(a);
    if (a->has_freeze) set_freeze(a);
    if (a->add != NIL || a->drop != NIL) change_measures(a);
}

static List *text_list(FunctionCallInfo fcinfo, int argno, const char *argname) {
    if (PG_NARGS() <= argno || PG_ARGISNULL(argno)) return NIL;
    ArrayType *arr = PG_GETARG_ARRAYTYPE_P(argno);
    Datum *elems;
    bool *nulls;
    int n;
    deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    List *out = NIL;
    for (int i = 0; i < n; i++) {
        if (nulls[i]) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, psprintf("%s must not contain NULL", argname), NULL);
        out = lappend(out, TextDatumGetCString(elems[i]));
    }
    return out;
}

}  // namespace memoria

using namespace memoria;

// memoria.alter_rollup(name, refresh_interval, freeze_after, add_measures,
// drop_measures, rename_to, dry_run).  (Before 0.4.0: name and
// refresh_interval only, returning void.)
MEMORIA_FUNCTION(memoria_alter_rollup) {
    const char *name = name_arg(fcinfo);
    if (citus_rollup_exists(name))
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("alter_rollup does not change distributed rollups yet: \"%s\" is one", name),
                        errhint("Drop it and create it again with the new definition.")));
    Alteration a;
    memset(&a, 0, sizeof a);
    a.r = load_rollup(name);
    a.has_interval = PG_NARGS() > 1 && !PG_ARGISNULL(1);
    if (a.has_interval) a.interval = *PG_GETARG_INTERVAL_P(1);
    a.has_freeze = PG_NARGS() > 2 && !PG_ARGISNULL(2);
    if (a.has_freeze) a.freeze = *PG_GETARG_INTERVAL_P(2);
    a.add = text_list(fcinfo, 3, "add_measures");
    a.drop = text_list(fcinfo, 4, "drop_measures");
    a.rename = PG_NARGS() > 5 && !PG_ARGISNULL(5) ? text_to_cstring(PG_GETARG_TEXT_PP(5)) : NULL;
    a.dry_run = PG_NARGS() > 6 && !PG_ARGISNULL(6) && PG_GETARG_BOOL(6);
    a.mcxt = CurrentMemoryContext;
    if ((a.add != NIL || a.drop != NIL || a.has_freeze || a.rename) && !catalog_has_column("rollups", "freeze_after"))
        arg_error(ERRCODE_FEATURE_NOT_SUPPORTED, "this change needs memoria 0.4.0",
                  "Run ALTER EXTENSION memoria UPDATE.");
    // After a running refresh (or an adoption); no refresh starts until
    // this commits.
    lock_rollup(a.r->id);
    char *waiting;
    if (!settle_restored(a.r, &waiting))
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("rollup \"%s\" is being restored: %s", a.r->name, waiting)));
    ErrorData *e = try_in_subtransaction(apply, &a, !a.dry_run);
    if (e != NULL) ReThrowError(e);
    if (PG_NARGS() <= 2) PG_RETURN_VOID();  // 0.3.0's alter_rollup(name, refresh_interval) returns void
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    int n = 0;
    ListCell *lc;
    foreach (lc, a.steps) {
        Step *s = (Step *) lfirst(lc);
        Datum values[3] = {Int32GetDatum(++n), CStringGetTextDatum(s->action),
                           CStringGetTextDatum(a.dry_run ? psprintf("would be: %s", s->detail) : s->detail)};
        bool nulls[3] = {false, false, false};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum) 0;
}

// ddl_guard.cpp: the DDL hooks' C side.  After DDL on a rollup's source
// tree or on a function its expressions call, the rollup must still fit:
// renames of the source and of the columns memoria stores by attribute
// number are harmless; anything that would make the rollup silently wrong or
// failing raises an ERROR, which undoes the DDL.  Then the capture triggers
// are brought in line (triggers.cpp).  Also: the update script's repair, and
// the entry points of older SQL versions.
#include "args.hpp"
#include "ddl_guard.hpp"
#include "dirty_log.hpp"
#include "expressions.hpp"
#include "guard.hpp"
#include "triggers.hpp"

namespace memoria {

// source_problem: why memoria could not capture every change of the source
// table, or NULL.  Checked at creation and after every ALTER of the source.
char *source_problem(Oid source, const char **hint) {
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(source));
    if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for relation %u", source);
    Form_pg_class rel = (Form_pg_class) GETSTRUCT(tup);
    char *problem = NULL;
    if (rel->relpersistence == RELPERSISTENCE_TEMP) {
        problem = pstrdup("is a temporary table");
        *hint = "A rollup outlives the session; roll up a permanent table.";
    } else if (rel->relpersistence == RELPERSISTENCE_UNLOGGED) {
        problem = pstrdup("is unlogged (a crash empties it without any trigger firing)");
        *hint = "Make it a logged table: ALTER TABLE ... SET LOGGED.";
    } else if (rel->relrowsecurity && rel->relforcerowsecurity) {
        problem = pstrdup("forces row level security on its owner (a refresh would aggregate only the rows a policy shows)");
        *hint = "ALTER TABLE ... NO FORCE ROW LEVEL SECURITY: the owner then reads every row, and other roles still see "
                "only theirs.";
    } else if (rel->relkind == RELKIND_RELATION && find_inheritance_children(source, NoLock) != NIL) {
        problem = pstrdup("has inheritance children (writes to them fire no trigger of the parent's)");
        *hint = "Use declarative partitioning (PARTITION BY), whose partitions memoria captures.";
    }
    ReleaseSysCache(tup);
    return problem;
}

// column_problem: what is wrong with column `a` of rel for a rollup that
// needs type `type` (typmod `typmod`, or -2 for any) and collation `coll`
// (InvalidOid: any), or NULL.
static char *column_problem(Oid rel, AttrNumber a, const char *role, Oid type, int32 typmod, Oid coll) {
    HeapTuple tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(rel), Int16GetDatum(a));
    if (!HeapTupleIsValid(tup)) return psprintf("its %s no longer exists", role);
    Form_pg_attribute att = (Form_pg_attribute) GETSTRUCT(tup);
    char *problem = NULL;
    if (att->attisdropped)
        problem = psprintf("its %s would be dropped", role);
    else if (att->atttypid != type || (typmod != -2 && att->atttypmod != typmod))
        problem = psprintf("its %s \"%s\" would change type from %s to %s", role, NameStr(att->attname),
                           format_type_with_typemod(type, typmod == -2 ? -1 : typmod),
                           format_type_with_typemod(att->atttypid, att->atttypmod));
    else if (OidIsValid(coll) && att->attcollation != coll)
        problem = psprintf("its %s \"%s\" would change collation (which changes how its values group)", role,
                           NameStr(att->attname));
    else if (att->attgenerated != '\0' && strcmp(role, "dimension") != 0)
        problem = psprintf("its %s \"%s\" would become a generated column", role, NameStr(att->attname));
    ReleaseSysCache(tup);
    return problem;
}

// rollup_problem: what about the source no longer fits the rollup, or NULL.
static char *rollup_problem(const Rollup *r) {
    const char *hint;
    char *problem = source_problem(r->source, &hint);
    if (problem) return psprintf("the source %s", problem);
    problem = column_problem(r->source, r->time_attnum, "time column", r->time_type, -2, InvalidOid);
    for (int i = 0; i < r->ndims && !problem; i++) {
        Oid type;
        int32 typmod;
        Oid coll;
        get_atttypetypmodcoll(r->target, (AttrNumber) (2 + i), &type, &typmod, &coll);
        problem = column_problem(r->source, r->dim_attnums[i], "dimension", type, typmod, coll);
    }
    if (!problem && r->updated_at_attnum != 0) {
        problem = column_problem(r->source, r->updated_at_attnum, "updated_at column", TIMESTAMPTZOID, -2,
                                 InvalidOid);
        if (!problem) {  // the column exists: column_problem found it
            HeapTuple tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(r->source), Int16GetDatum(r->updated_at_attnum));
            if (!((Form_pg_attribute) GETSTRUCT(tup))->attnotnull)
                problem = pstrdup("its updated_at column would allow NULL");
            ReleaseSysCache(tup);
        }
    }
    if (!problem) problem = expressions_problem(r);
    return problem;
}

// check_still_fits: ERROR (undoing the DDL) unless the rollup fits its source.
static void check_still_fits(const Rollup *r) {
    char *problem = rollup_problem(r);
    if (problem)
        ereport(ERROR, (errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
                        errmsg("cannot alter %s: memoria rollup \"%s\" depends on it, and %s",
                               qualified_relation_name(r->source), r->name, problem),
                        errhint("Drop the rollup first with memoria.drop_rollup('%s'), then create it again "
                                "after the change.", r->name)));
}

}  // namespace memoria

using namespace memoria;

// memoria._after_ddl(rollup_id): called by the ddl_command_end event trigger
// after a CREATE or ALTER TABLE in the source's tree (or an ALTER TRIGGER).
// Renames of the source and of the columns memoria stores by attribute number
// are harmless; anything that would make the rollup silently wrong or
// failing raises an ERROR, which undoes the command.  Then the capture
// triggers are brought in line with the source (triggers.cpp), and a
// disabled trigger is reported (and the rollup rebuilt once it is back).
MEMORIA_FUNCTION(memoria_after_ddl) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL) PG_RETURN_VOID();
    check_still_fits(r);
    reconcile_triggers(r, false);
    settle_capture(r, true);
    PG_RETURN_VOID();
}

// memoria._function_changed(rollup_id): a function the rollup's expressions
// call was replaced or altered (ddl_command_end): it must still fit, and the
// rollup is rebuilt, since its rows were computed by the old definition.
MEMORIA_FUNCTION(memoria_function_changed) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL) PG_RETURN_VOID();
    char *problem = rollup_problem(r);
    if (problem)
        ereport(ERROR, (errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
                        errmsg("cannot change the function: memoria rollup \"%s\" depends on it, and %s", r->name,
                               problem),
                        errhint("Drop the rollup first with memoria.drop_rollup('%s'), then create it again "
                                "after the change.", r->name)));
    record_function_dependencies(r);
    mark_rebuild(r);
    ereport(NOTICE, (errmsg("memoria rollup \"%s\" uses the function changed: its next refresh rebuilds it",
                            r->name)));
    PG_RETURN_VOID();
}

// memoria._in_own_ddl(): whether the trigger being dropped is memoria's doing.
MEMORIA_FUNCTION(memoria_in_own_ddl) {
    PG_RETURN_BOOL(in_own_ddl());
}

// memoria._capture_problem(rollup_id): why the rollup's capture cannot be
// trusted now, or NULL (also for a rollup the caller may not see).
MEMORIA_FUNCTION(memoria_capture_problem) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL || !can_manage(r->owner) || get_rel_name(r->source) == NULL) PG_RETURN_NULL();
    char *problem = capture_problem(r);
    if (problem == NULL) PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(problem));
}

// memoria._repair(rollup_id): the update script's repair of a rollup made by
// an older version: a fresh dirty log owned by the extension (the old one
// belonged to the rollup's owner, who may have left anything on it), the
// triggers of this version's layout, its function dependencies.
MEMORIA_FUNCTION(memoria_repair) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r == NULL) PG_RETURN_VOID();
    renew_dirty_log(r);
    // A rollup table without a primary key (a nullable dimension) needs a
    // replica identity under a FOR ALL TABLES publication.
    SPI_connect();
    CatalogSession cs = enter_catalog_session();
    Oid types[1] = {OIDOID};
    Datum values[1] = {ObjectIdGetDatum(r->target)};
    spi_exec("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1 AND indisprimary)", 1, types,
             values, NULL, true);
    if (!spi_bool(1))
        spi_exec(psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", qualified_relation_name(r->target)), 0, NULL,
                 NULL, NULL, false);
    leave_catalog_session(cs);
    SPI_finish();
    CommandCounterIncrement();
    reconcile_triggers(r, true);
    record_function_dependencies(r);
    // Other backends' capture caches name the old log.
    CacheInvalidateRelcacheByRelid(r->source);
    PG_RETURN_VOID();
}

// ---------------------------------------------------------------------------
// Entry points of older SQL versions (the library serves them until ALTER
// EXTENSION UPDATE): 0.2.0's ALTER guard and partition hook.
// ---------------------------------------------------------------------------

MEMORIA_FUNCTION(memoria_check_rollup) {
    if (PG_ARGISNULL(0)) arg_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "name must not be NULL", NULL);
    check_still_fits(load_rollup(text_to_cstring(PG_GETARG_TEXT_PP(0))));
    PG_RETURN_VOID();
}

MEMORIA_FUNCTION(memoria_adopt_trigger) {
    record_dependency(TriggerRelationId, PG_GETARG_OID(0), RelationRelationId, PG_GETARG_OID(1), DEPENDENCY_AUTO);
    record_dependency(TriggerRelationId, PG_GETARG_OID(0), ExtensionRelationId, get_extension_oid("memoria", false),
                      DEPENDENCY_AUTO);
    PG_RETURN_VOID();
}

// memoria._mark_rebuild(rollup_id): the event triggers' "rebuild everything"
// (a partition dropped, the source rewritten), through the one writer of
// that marker, which checks the log is still as memoria made it.
MEMORIA_FUNCTION(memoria_mark_rebuild) {
    Rollup *r = find_rollup_by_id(PG_GETARG_INT32(0));
    if (r != NULL && get_rel_name(r->dirty_log) != NULL) mark_rebuild(r);
    PG_RETURN_VOID();
}

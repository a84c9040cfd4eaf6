// triggers.hpp: memoria's capture triggers on a rollup's source -- their
// names, which ones a rollup needs now, and making the source match.
#pragma once
#include "catalog.hpp"

namespace memoria {

// memoria.writing_rollup (memoria.cpp): on in rollup sessions only.
extern bool writing_rollup;

// The kinds of capture trigger (see triggers.cpp for what each one does).
enum class TriggerKind { Capture, Insert, Replica, Truncate, Guard, Stale };

// trigger_name: "zz_memoria_<kind>_<rollup id>".
char *trigger_name(TriggerKind kind, int32 id);

// parse_trigger_name: the kind and rollup id a memoria trigger name encodes;
// false for any other name.
bool parse_trigger_name(const char *name, TriggerKind *kind, int32 *id);

// reconcile_triggers: create the triggers the rollup needs on its source and
// its partitions, drop those it no longer needs, and restore the modes they
// fire in (never re-enabling a trigger someone disabled).  Unless `initial`,
// the rows of partitions that joined or left the source are marked dirty.
void reconcile_triggers(const Rollup *r, bool initial);

// stale_triggers_before_ddl: the ddl_command_start hook's part for an
// ALTER TABLE that changes the type of an updated_at column: the stale
// trigger, whose WHEN clause reads the column and would make PostgreSQL
// refuse the change, is dropped; the reconcile at the command's end makes it
// again.  Other sessions wait on the table's lock in between; what the
// command itself may write, no trigger sees, so the rollup is rebuilt.
void stale_triggers_before_ddl(Node *parsetree);

// capture_problem: why the rollup's capture cannot be trusted now (a trigger
// missing or disabled), or NULL when every trigger is in place.
char *capture_problem(const Rollup *r);

// settle_capture: capture_problem(), remembered in the rollup's state: when
// a problem first shows (with warn, a WARNING says writes are not being
// captured); when it is gone, the rollup is marked for a rebuild, since
// writes made meanwhile were missed.  Returns the problem, or NULL.
char *settle_capture(const Rollup *r, bool warn);

// drop_triggers: every trigger of the rollup, on every table.
void drop_triggers(const Rollup *r);

// ensure_guard_trigger: the rollup table's guard trigger (only memoria
// writes a rollup table), created if missing, enabled if disabled.
void ensure_guard_trigger(const Rollup *r);
// guard_problem: why the guard trigger is not in place, or NULL.
char *guard_problem(const Rollup *r);

// record_trigger_dependencies: each trigger of the rollup goes with the
// rollup table and with the extension (again after a restore).
void record_trigger_dependencies(const Rollup *r);

// run_own_ddl: one statement of memoria's, as the extension's owner (or as
// as_role), with the DDL hooks standing aside (in_own_ddl).
void run_own_ddl(const char *sql, Oid as_role = InvalidOid);

// run_rollup_ddl: one statement of memoria's that holds the rollup's
// expressions (its _live view), in its rollup session: as its owner, with
// the settings its expressions were written for.
void run_rollup_ddl(const Rollup *r, const char *sql);

// in_own_ddl: whether the DDL now running is memoria's own (triggers.cpp).
bool in_own_ddl(void);

}  // namespace memoria

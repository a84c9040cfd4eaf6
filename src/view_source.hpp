// view_source.hpp: rollups of a view that joins a fact table to the tables
// its dimensions come from (api.md, "Sources with joined dimensions").
//
// The fact table holds the time column; its writes are captured like a table
// source's, as keys (bucket, scope), the scope being fact columns only.  A
// write to any other table of the view (a *linked* table) is logged as the
// values of the columns its join compares (its *link key*: agent.id for
// `JOIN agent a ON a.id = q.agent_id`), old and new, in the rollup's link log
// (memoria_state.links_<id>: link = the table, a regclass so that a dump
// carries it by name; k1..kN = the values in their type's binary form, which
// no session setting changes, unlike their text).  A refresh turns those into fact keys through the join as it is
// then: the keys of the fact rows whose parent row (agent_task_queue for
// agent) holds that value.  Whatever row of the join changed, the fact rows
// it joins to are found through the rows before it, which did not change or
// were logged themselves; done at refresh time, from a snapshot that sees
// every logged change it claims, this is exact whatever the writers'
// isolation level (a deleted dimension row needs no row to join against).
#pragma once
#include "statements.hpp"

namespace memoria {

constexpr int MAX_LINK_KEYS = 4;

// LinkedTable: a table of the view other than the fact table.
struct LinkedTable {
    Oid rel;
    int parent;                             // index of the table it joins to; -1: the fact table
    int nkeys;
    AttrNumber keys[MAX_LINK_KEYS];         // its columns the join compares: logged on every write
    AttrNumber parent_keys[MAX_LINK_KEYS];  // the parent's columns they are compared with
    Oid ops[MAX_LINK_KEYS];                 // the join's operators
    Oid collations[MAX_LINK_KEYS];          // and the collations they compare with
    bool parent_left[MAX_LINK_KEYS];        // whether the parent's column is the operator's left argument
};

// ViewJoin: what memoria reads from a view source's definition.
struct ViewJoin {
    Oid fact;
    int natts;
    AttrNumber *fact_attnum;  // [view attnum - 1]: the fact column the view column shows as is, or 0
    int ntables;
    LinkedTable *tables;
    int max_keys;             // the most key columns of any linked table (the link log's k columns)
};

// analyze_view_source: the join of view `view` whose column time_attnum is
// the time column, or NULL with *problem and *hint saying what memoria
// cannot roll up.
ViewJoin *analyze_view_source(Oid view, AttrNumber time_attnum, char **problem, const char **hint);

// attach_view_join: fill r's fact-side fields (fact, fact_time_attnum,
// fact_scope_attnums, join) from its source; a table source is its own fact.
// A view that no longer fits leaves r->fact invalid and *problem set.
void attach_view_join(Rollup *r, char **problem);

// captured_tables: every table whose writes the rollup captures: the fact
// table and the linked tables, with their partitions.
List *captured_tables(const Rollup *r);

// create_link_log: memoria_state.links_<id> (link regclass, k1..kN bytea).
Oid create_link_log(int32 id, int nkeys, Oid owner, Oid target);

// link_log_keys: how many key columns (k1..kN) a link log has.
int link_log_keys(Oid link_log);

// translate_links: claim the link log's rows this snapshot sees and log the
// keys of the fact rows they reach (refresh, in the rollup session, SPI
// connected).
void translate_links(const Rollup *r);

// linked_keys_sql: the keys (bucket, scope) the link key values of table
// `t` reach ($3, $4, ...: an array per key column, of its type); "$1, $2"
// are the bucket's width and zone.
char *linked_keys_sql(const Rollup *r, int t);

// LinkValues: logged link keys, per linked table and key column: as logged
// (bytea), then decoded.
struct LinkValues {
    const Rollup *r;
    List **values;  // [table * MAX_LINK_KEYS + key]: bytea *, then Datum *
};
LinkValues *new_link_values(const Rollup *r);
// add_link_values: one link log row (link, k1..kN; nulls[k]).
void add_link_values(LinkValues *lv, Datum link, const Datum *keys, const bool *nulls, int nkeys);
// decode_link_values: decode them all; false if one no longer decodes (an
// enum label renamed since): the caller then recomputes everything instead.
bool decode_link_values(LinkValues *lv);
// link_values_params: linked_keys_sql(r, t)'s parameters; false if t has no values.
bool link_values_params(const LinkValues *lv, int t, struct Params *p);

}  // namespace memoria

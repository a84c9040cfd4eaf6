// expressions.hpp: a rollup's measures and filter -- the user's SQL text.
// Each must parse as exactly one expression; measures must be aggregates
// with an alias; both must be deterministic (the same result for the same
// source rows at any later refresh).  The rollup table depends on the
// user's functions they call, as a view would.
#pragma once
#include "catalog.hpp"

namespace memoria {

// ARG_HINT_ALIAS: how to write a measure.
extern const char *const ARG_HINT_ALIAS;

// parse_single_select: raw parse of "SELECT <expression>", ERROR naming
// `what` unless it is a single expression with no other clause.
SelectStmt *parse_single_select(const char *sql, const char *what);
// analyze_query: parse analysis of one statement, ERROR naming `what`.
Query *analyze_query(const char *sql, const char *what);

// deterministic_problem: why an analysed expression (with its raw parse
// tree, for literals) might give another result for the same source rows
// at a later refresh, or NULL; check_deterministic: ERROR naming `what`.
char *deterministic_problem(Query *q, Node *raw);
void check_deterministic(Query *q, Node *raw, const char *what);

// ownership_problem: a function of the user's the expression calls that
// `owner` does not own (nor is a member of its owner), or NULL: another role
// could change or drop it under the rollup.  Built-in and extensions'
// functions are fine.
char *ownership_problem(Query *q, Oid owner);

// Measure: measures[i] of create_rollup (argname[i] of another function),
// checked against the source `src`.
struct Measure {
    char *text;   // 'expression AS alias'
    char *alias;
    Oid type;
    int32 typmod;
};
Measure check_measure(const char *text, int i, const char *src, const char *argname = "measures");
void check_filter(const char *filter, const char *src);

// Dimension: dimensions[i] of create_rollup written 'expression AS alias'
// (a plain column name is not one), checked against the source `src`: not an
// aggregate, deterministic.  expr is the expression without its alias.
struct Dimension {
    char *expr;
    char *alias;
    Oid type;
    int32 typmod;
    Oid collation;
};
// split_alias: whether text ends with "AS alias"; *expr then holds the rest
// (and *alias_text the alias as written).
bool split_alias(const char *text, char **expr, char **alias_text = NULL);
Dimension check_dimension(const char *text, int i, const char *src);

// analyze_expressions: the rollup's measures, its dimension expressions
// (after them) and its filter as one analysed query over its source, in the
// rollup's session; *raw its raw parse tree.
// On failure NULL, and *problem says why.
Query *analyze_expressions(const Rollup *r, Node **raw, char **problem);
// expressions_problem: they must still analyse to the types of the rollup
// table's columns, and still be deterministic; NULL if so.
char *expressions_problem(const Rollup *r);
// expressions_read_session: whether the rollup's expressions call a function
// whose result follows session settings (TimeZone, DateStyle, ...): the
// built-in date/time ones.
bool expressions_read_session(const Rollup *r);
// record_function_dependencies: the rollup table depends on each function
// of the user's they call (DROP FUNCTION then needs CASCADE).
void record_function_dependencies(const Rollup *r);

}  // namespace memoria

// dirty_set.hpp: the per-transaction set of dirty keys, written to the dirty
// logs before the transaction commits (dirty_set.cpp says how and why).
//
// A key is a string of bytes, built with key_start / key_put_bucket /
// key_put_scope, and read back only here:
//   the dirty log's oid | a null flag per log column (bucket first) |
//   the bucket as an int64 (days for date) | each non-null scope value:
//   by-value types as a Datum, fixed-length types as their bytes, varlena as
//   the whole detoasted value, cstring with its terminator.
// Binary equality is a sound dedup test: two equal values with different
// bytes just give two log rows.  A key whose flags are all set (no bucket)
// means "rebuild everything" (TRUNCATE).
#pragma once
#include "pg.hpp"

namespace memoria {

// The most scope columns a rollup can have.
constexpr int MAX_SCOPE = 32;

// The builders are inline: capture calls them for every row written.
inline void key_append(StringInfo buf, const void *bytes, int n) {
    if (buf->len + n >= buf->maxlen) enlargeStringInfo(buf, n);
    memcpy(buf->data + buf->len, bytes, n);
    buf->len += n;
}

inline void key_start(StringInfo buf, Oid dirty_log, int nscope) {
    if (sizeof(Oid) + nscope + 1 >= (size_t) buf->maxlen) enlargeStringInfo(buf, sizeof(Oid) + nscope + 1);
    memcpy(buf->data, &dirty_log, sizeof(Oid));
    memset(buf->data + sizeof(Oid), 1, nscope + 1);  // null flags, cleared as values come
    buf->len = sizeof(Oid) + nscope + 1;
}

inline void key_put_bucket(StringInfo buf, int64 bucket) {
    buf->data[sizeof(Oid)] = 0;
    key_append(buf, &bucket, sizeof bucket);
}

inline void key_put_scope(StringInfo buf, int i, Datum value, int16 typlen, bool typbyval) {
    buf->data[sizeof(Oid) + 1 + i] = 0;
    if (typbyval) {
        key_append(buf, &value, sizeof(Datum));
    } else if (typlen > 0) {
        key_append(buf, DatumGetPointer(value), typlen);
    } else if (typlen == -1) {
        struct varlena *v = (struct varlena *) DatumGetPointer(value);
        if (VARATT_IS_EXTENDED(v)) v = pg_detoast_datum_packed(v);
        key_append(buf, v, VARSIZE_ANY(v));
    } else {
        const char *s = DatumGetCString(value);
        key_append(buf, s, strlen(s) + 1);
    }
}

// key_read_value: one value written by key_put_scope, at *p (moved past
// it); copied into aligned memory.
Datum key_read_value(const char **p, int16 typlen, bool typbyval);

// dirty_set_add: add a key to this transaction's set (with may_flush, the
// set may write its keys to the logs now).
void dirty_set_add(const char *bytes, int len, bool may_flush = true);

// LogShape: a dirty log's column types, as capture serializes its keys;
// check_log_shape: ERROR unless the log has exactly these columns.
struct LogShape {
    Oid log;
    int natts;
    Oid types[MAX_SCOPE + 1];
};
void remember_log_shape(const LogShape *shape);
void check_log_shape(Relation log, const LogShape *shape);

// dirty_set_flush_if_due: write the set's keys now if enough new ones have
// gathered (after keys were added with may_flush false).
void dirty_set_flush_if_due(void);

// flush_pending_keys: write this backend's pending keys to the logs now
// (refresh calls it, so that it sees the caller's own earlier writes).
void flush_pending_keys(void);

// unwritten_keys: this transaction's keys for a dirty log not yet written
// to it, as log rows (n rows of desc->natts values, row-major); returns n.
int unwritten_keys(Oid dirty_log, TupleDesc desc, Datum **values, bool **isnull);

// init_dirty_set: register the transaction callbacks (from _PG_init).
void init_dirty_set(void);

}  // namespace memoria

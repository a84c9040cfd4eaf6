// memoriactl: memoria from a shell, cron or a monitoring system (libpq).
//
//   memoriactl [-d CONNINFO] status [--json]
//   memoriactl [-d CONNINFO] refresh [ROLLUP...]
//   memoriactl [-d CONNINFO] backfill ROLLUP [--from TS] [--to TS] [--slice INTERVAL]
//   memoriactl [-d CONNINFO] verify ROLLUP [--from TS] [--to TS]
//   memoriactl [-d CONNINFO] check-lag [--warn 10m] [--crit 30m] [ROLLUP...]
//
// Every command is a thin client of memoria's SQL API: the server does the
// work (and keeps it consistent); this tool connects, formats and maps
// outcomes to exit codes.  This is a client program, so plain C++ (RAII,
// exceptions) is fine here; nothing of it runs inside PostgreSQL.
#include <libpq-fe.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

const char *const VERSION = "0.2.0";

// Exit codes.  check-lag follows the monitoring-plugin convention instead
// (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
enum Exit { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };
enum Nagios { NAGIOS_OK = 0, NAGIOS_WARNING = 1, NAGIOS_CRITICAL = 2, NAGIOS_UNKNOWN = 3 };

const char *const HELP = R"(memoriactl: operate memoria rollups from the command line.

Usage:
  memoriactl [-d CONNINFO] COMMAND [OPTIONS] [ROLLUP...]

Commands:
  status [--json]               every rollup: watermark, lag, pending keys,
                                last refresh and error, backfill progress,
                                state; exit 1 if one fails or does not capture
  refresh [ROLLUP...]           refresh the named rollups (default: all yours);
                                exit 1 if any of them failed
  backfill ROLLUP [--from TS] [--to TS] [--slice INTERVAL]
                                fill a rollup slice by slice (default slice
                                '1 month'); a progress bar on a terminal, one
                                line per slice otherwise; Ctrl-C cancels
                                cleanly and running it again resumes
  verify ROLLUP [--from TS] [--to TS]
                                print groups where the rollup differs from its
                                source; exit 1 if there are any
  check-lag [--warn 10m] [--crit 30m] [ROLLUP...]
                                monitoring check: exit 0 OK, 1 WARNING,
                                2 CRITICAL, 3 UNKNOWN, one status line

Connection:
  -d, --dbname CONNINFO         database name, conninfo string or URI; the
                                PG* environment variables apply as in psql

  --help                        show this help
  --version                     show the version

Exit codes: 0 success, 1 the command found a problem (failed refresh,
differences), 2 bad arguments / cannot connect / unknown rollup,
130 interrupted.
)";

struct UsageError {
    std::string message;
};

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

struct Options {
    std::string conninfo;
    std::string command;
    std::vector<std::string> names;  // positional arguments after the command
    bool json = false;
    std::optional<std::string> from, to, slice;
    std::string warn = "10m", crit = "30m";
};

Options parse_arguments(int argc, char **argv) {
    Options o;
    std::vector<std::string> args(argv + 1, argv + argc);
    auto value_of = [&](size_t &i, const std::string &arg, const std::string &name) -> std::string {
        if (arg.size() > name.size() && arg.compare(0, name.size() + 1, name + "=") == 0)
            return arg.substr(name.size() + 1);
        if (i + 1 >= args.size()) throw UsageError{"option " + name + " needs a value"};
        return args[++i];
    };
    auto is_option = [](const std::string &arg, const std::string &name) {
        return arg == name || arg.compare(0, name.size() + 1, name + "=") == 0;
    };
    for (size_t i = 0; i < args.size(); i++) {
        const std::string &a = args[i];
        if (a == "--help" || a == "-?") {
            o.command = "help";
            return o;
        }
        if (a == "--version" || a == "-V") {
            o.command = "version";
            return o;
        }
        if (a == "-d" || is_option(a, "--dbname")) o.conninfo = value_of(i, a, a == "-d" ? "-d" : "--dbname");
        else if (a == "--json") o.json = true;
        else if (is_option(a, "--from")) o.from = value_of(i, a, "--from");
        else if (is_option(a, "--to")) o.to = value_of(i, a, "--to");
        else if (is_option(a, "--slice")) o.slice = value_of(i, a, "--slice");
        else if (is_option(a, "--warn")) o.warn = value_of(i, a, "--warn");
        else if (is_option(a, "--crit")) o.crit = value_of(i, a, "--crit");
        else if (a.size() > 1 && a[0] == '-') throw UsageError{"unknown option \"" + a + "\""};
        else if (o.command.empty()) o.command = a;
        else o.names.push_back(a);
    }
    if (o.command.empty()) throw UsageError{"no command given"};
    static const char *const commands[] = {"status", "refresh", "backfill", "verify", "check-lag"};
    bool known = false;
    for (const char *c : commands) known = known || o.command == c;
    if (!known) throw UsageError{"unknown command \"" + o.command + "\""};
    if ((o.command == "backfill" || o.command == "verify") && o.names.size() != 1)
        throw UsageError{o.command + " needs exactly one ROLLUP"};
    if (o.command == "status" && !o.names.empty()) throw UsageError{"status takes no ROLLUP"};
    if (o.json && o.command != "status") throw UsageError{"--json only applies to status"};
    if (o.slice && o.command != "backfill") throw UsageError{"--slice only applies to backfill"};
    if ((o.from || o.to) && o.command != "backfill" && o.command != "verify")
        throw UsageError{"--from and --to only apply to backfill and verify"};
    return o;
}

// ---------------------------------------------------------------------------
// libpq
// ---------------------------------------------------------------------------

struct ResultDeleter {
    void operator()(PGresult *r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

struct ConnDeleter {
    void operator()(PGconn *c) const { PQfinish(c); }
};
using Connection = std::unique_ptr<PGconn, ConnDeleter>;

// A failed query: the server's message and hint, and its SQLSTATE.
struct QueryError {
    std::string sqlstate, message, hint;
};

std::string field(const PGresult *r, int code) {
    const char *v = PQresultErrorField(r, code);
    return v ? v : "";
}

// run: one statement with text parameters (nullopt = NULL); throws QueryError.
Result run(PGconn *conn, const std::string &sql, const std::vector<std::optional<std::string>> &params = {}) {
    std::vector<const char *> values;
    for (const auto &p : params) values.push_back(p ? p->c_str() : nullptr);
    Result r(PQexecParams(conn, sql.c_str(), (int) values.size(), nullptr, values.data(), nullptr, nullptr, 0));
    ExecStatusType s = PQresultStatus(r.get());
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
        QueryError e{field(r.get(), PG_DIAG_SQLSTATE), field(r.get(), PG_DIAG_MESSAGE_PRIMARY),
                     field(r.get(), PG_DIAG_MESSAGE_HINT)};
        if (e.message.empty()) e.message = PQerrorMessage(conn);
        throw e;
    }
    return r;
}

std::string value(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
}

// exit code of a failed query: the caller's mistake (cannot connect, unknown
// rollup, no permission, bad value) is a usage error; anything else a failure.
int exit_code_of(const QueryError &e) {
    const std::string cls = e.sqlstate.substr(0, 2);
    return (cls == "08" || cls == "42" || cls == "22") ? EXIT_USAGE : EXIT_FAILED;
}

void print_error(const QueryError &e) {
    std::fprintf(stderr, "memoriactl: %s\n", e.message.c_str());
    if (!e.hint.empty()) std::fprintf(stderr, "hint: %s\n", e.hint.c_str());
}

// connect_to: a connection to a database with memoria installed, or a
// QueryError saying why not.
Connection connect_to(const std::string &conninfo) {
    const char *keywords[] = {"dbname", "fallback_application_name", nullptr};
    const char *values[] = {conninfo.empty() ? nullptr : conninfo.c_str(), "memoriactl", nullptr};
    Connection conn(PQconnectdbParams(keywords, values, 1));
    if (PQstatus(conn.get()) != CONNECTION_OK) {
        std::string msg = PQerrorMessage(conn.get());
        while (!msg.empty() && msg.back() == '\n') msg.pop_back();
        throw QueryError{"08000", "cannot connect: " + msg,
                         "Give the database with -d (a name, conninfo or URI) or the PG* environment variables."};
    }
    Result r = run(conn.get(), "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'memoria'");
    if (PQntuples(r.get()) == 0)
        throw QueryError{"42704", std::string("memoria is not installed in database \"") + PQdb(conn.get()) + "\"",
                         "Connect to the database that holds the rollups, or run CREATE EXTENSION memoria there."};
    return conn;
}

// ---------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------

void print_table(const std::vector<std::string> &headers, const std::vector<std::vector<std::string>> &rows) {
    std::vector<size_t> width(headers.size());
    for (size_t c = 0; c < headers.size(); c++) {
        width[c] = headers[c].size();
        for (const auto &row : rows) width[c] = std::max(width[c], row[c].size());
    }
    auto line = [&](const std::vector<std::string> &cells) {
        std::string out;
        for (size_t c = 0; c < cells.size(); c++) {
            std::string cell = cells[c];
            if (c + 1 < cells.size()) cell.resize(width[c], ' ');
            out += (c ? "  " : "") + cell;
        }
        std::printf("%s\n", out.c_str());
    };
    line(headers);
    std::vector<std::string> rule;
    for (size_t w : width) rule.push_back(std::string(w, '-'));
    line(rule);
    for (const auto &row : rows) line(row);
}

int cmd_status(PGconn *conn, const Options &o) {
    // Exit 1 when a rollup fails or does not capture: a script or a cron
    // line can tell.
    Result failing = run(conn, "SELECT count(*) FROM memoria.status WHERE state IN ('error', 'capture_disabled')");
    int code = value(failing.get(), 0, 0) == "0" ? EXIT_OK : EXIT_FAILED;
    if (o.json) {
        // Intervals also as numbers of seconds, for programs.
        Result r = run(conn, "SELECT coalesce(jsonb_agg(to_jsonb(s) || jsonb_build_object("
                             "  'lag_seconds', extract(epoch FROM s.lag),"
                             "  'last_duration_seconds', extract(epoch FROM s.last_duration)) ORDER BY s.rollup), '[]')"
                             "FROM memoria.status s");
        std::printf("%s\n", PQgetvalue(r.get(), 0, 0));
        return code;
    }
    Result r = run(conn,
                   "SELECT rollup, coalesce(date_trunc('second', watermark)::text, '-'), "
                   "coalesce(date_trunc('second', lag)::text, '-'), pending_keys::text, "
                   "coalesce(date_trunc('second', last_refresh_at)::text, '-'), coalesce(last_status, '-'), "
                   "CASE WHEN NOT needs_backfill THEN 'done' "
                   "     WHEN backfill_progress IS NOT NULL THEN round(backfill_progress * 100)::text || '%' "
                   "     ELSE 'needed' END, "
                   "scheduled_by, state, coalesce(last_error, '') FROM memoria.status ORDER BY rollup");
    std::vector<std::vector<std::string>> rows;
    for (int i = 0; i < PQntuples(r.get()); i++) {
        std::vector<std::string> row;
        for (int c = 0; c < PQnfields(r.get()); c++) row.push_back(value(r.get(), i, c));
        rows.push_back(row);
    }
    if (rows.empty()) {
        std::printf("no rollups (memoria.create_rollup makes one)\n");
        return EXIT_OK;
    }
    print_table({"rollup", "watermark", "lag", "pending", "last refresh", "status", "backfill", "scheduled by",
                 "state", "last error"},
                rows);
    return code;
}

// ---------------------------------------------------------------------------
// refresh
// ---------------------------------------------------------------------------

int cmd_refresh(PGconn *conn, const Options &o) {
    std::vector<std::optional<std::string>> targets;
    if (o.names.empty()) targets.push_back(std::nullopt);
    for (const auto &n : o.names) targets.push_back(n);
    int code = EXIT_OK;
    bool any = false;
    for (const auto &t : targets) {
        try {
            Result r = run(conn,
                           "SELECT rollup, status, keys_refreshed, rows_upserted, rows_deleted, "
                           "date_trunc('milliseconds', duration)::text, coalesce(error, '') "
                           "FROM memoria.refresh($1)",
                           {t});
            for (int i = 0; i < PQntuples(r.get()); i++) {
                any = true;
                std::string status = value(r.get(), i, 1);
                std::printf("%s: %s, %s keys, %s rows upserted, %s deleted, %s\n", value(r.get(), i, 0).c_str(),
                            status.c_str(), value(r.get(), i, 2).c_str(), value(r.get(), i, 3).c_str(),
                            value(r.get(), i, 4).c_str(), value(r.get(), i, 5).c_str());
                if (status == "error") {
                    std::printf("  error: %s\n", value(r.get(), i, 6).c_str());
                    code = std::max(code, (int) EXIT_FAILED);
                }
            }
        } catch (const QueryError &e) {
            print_error(e);
            code = std::max(code, exit_code_of(e));
        }
    }
    if (!any && code == EXIT_OK) std::printf("no rollups to refresh\n");
    return code;
}

// ---------------------------------------------------------------------------
// backfill: CALL memoria.backfill, showing the progress its NOTICEs carry.
// ---------------------------------------------------------------------------

volatile sig_atomic_t interrupted = 0;
PGcancel *volatile cancel_handle = nullptr;

void on_sigint(int) {
    interrupted = 1;
    char buf[256];
    if (cancel_handle) PQcancel(cancel_handle, buf, sizeof buf);  // async-signal-safe
    std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C kills at once
}

struct Progress {
    bool tty;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    long long rows = 0;
    int done = 0, total = 0;
};

// json_field: the value of "key" in a flat JSON object (the DETAIL of
// memoria.backfill's NOTICEs: numbers and strings without escapes), or "".
std::string json_field(const std::string &json, const char *key) {
    std::string k = std::string("\"") + key + "\"";
    size_t at = json.find(k);
    if (at == std::string::npos) return "";
    at = json.find(':', at + k.size());
    if (at == std::string::npos) return "";
    at = json.find_first_not_of(' ', at + 1);
    if (at == std::string::npos) return "";
    if (json[at] == '"') {
        size_t end = json.find('"', at + 1);
        return end == std::string::npos ? "" : json.substr(at + 1, end - at - 1);
    }
    size_t end = json.find_first_of(",}", at);
    return json.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

// on_notice: memoria.backfill's NOTICEs carry their progress as JSON in
// DETAIL; any other notice is shown as it is.
void on_notice(void *arg, const PGresult *res) {
    Progress *p = static_cast<Progress *>(arg);
    std::string msg = field(res, PG_DIAG_MESSAGE_PRIMARY);
    std::string detail = field(res, PG_DIAG_MESSAGE_DETAIL);
    std::string resume = json_field(detail, "resume_at");
    if (!resume.empty()) {
        std::printf("resuming at %s\n", resume.c_str());
        std::fflush(stdout);
        return;
    }
    std::string slice = json_field(detail, "slice");
    if (slice.empty()) {
        std::fprintf(stderr, "%s\n", msg.c_str());
        return;
    }
    p->done = std::stoi(slice);
    p->total = std::stoi(json_field(detail, "slices"));
    std::string rows = json_field(detail, "rows"), percent = json_field(detail, "percent");
    std::string eta = json_field(detail, "eta");
    p->rows += rows.empty() ? 0 : std::stoll(rows);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - p->started).count();
    long long rate = secs > 0 ? (long long) (p->rows / secs) : 0;
    if (p->tty) {
        const int width = 30;
        int filled = p->total ? width * p->done / p->total : width;
        std::printf("\r\033[K[%s%s] %d/%d slices  %s%%  %lld rows/s  ETA %s", std::string(filled, '#').c_str(),
                    std::string(width - filled, '.').c_str(), p->done, p->total, percent.c_str(), rate, eta.c_str());
    } else {
        std::printf("slice %d/%d [%s, %s) %s%% %s rows (%lld rows/s) ETA %s\n", p->done, p->total,
                    json_field(detail, "from").c_str(), json_field(detail, "to").c_str(), percent.c_str(),
                    rows.c_str(), rate, eta.c_str());
    }
    std::fflush(stdout);
}

int cmd_backfill(PGconn *conn, const Options &o) {
    const std::string &name = o.names[0];
    // Fail early, with the usual message, for an unknown or foreign rollup.
    run(conn, "SELECT memoria.alter_rollup($1)", {name});
    Progress progress;
    progress.tty = isatty(STDOUT_FILENO);
    PQsetNoticeReceiver(conn, on_notice, &progress);
    cancel_handle = PQgetCancel(conn);
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    int code = EXIT_OK;
    try {
        run(conn, "CALL memoria.backfill($1, $2::timestamptz, $3::timestamptz, coalesce($4::interval, '1 month'))",
            {name, o.from, o.to, o.slice});
    } catch (const QueryError &e) {
        if (progress.tty) std::printf("\n");
        if (interrupted) {
            std::fprintf(stderr,
                         "memoriactl: interrupted; the slices done are committed, run the same command again to "
                         "resume\n");
            code = EXIT_INTERRUPTED;
        } else {
            print_error(e);
            code = exit_code_of(e);
        }
    }
    std::signal(SIGINT, SIG_DFL);
    PGcancel *c = cancel_handle;
    cancel_handle = nullptr;
    PQfreeCancel(c);
    if (code != EXIT_OK) return code;
    if (progress.tty) std::printf("\n");
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - progress.started).count();
    std::printf("backfill of %s complete: %d slices, %lld rollup rows, %.1f s\n", name.c_str(), progress.total,
                progress.rows, secs);
    return EXIT_OK;
}

// ---------------------------------------------------------------------------
// verify
// ---------------------------------------------------------------------------

int cmd_verify(PGconn *conn, const Options &o) {
    const std::string &name = o.names[0];
    Result r = run(conn,
                   "SELECT bucket, dimensions::text, coalesce(rollup_values::text, '(missing)'), "
                   "coalesce(source_values::text, '(none)') "
                   "FROM memoria.verify($1, coalesce($2::timestamptz, '-infinity'), coalesce($3::timestamptz, 'infinity')) "
                   "ORDER BY 1, 2",
                   {name, o.from, o.to});
    int n = PQntuples(r.get());
    for (int i = 0; i < n; i++)
        std::printf("%s %s: rollup %s, source %s\n", value(r.get(), i, 0).c_str(), value(r.get(), i, 1).c_str(),
                    value(r.get(), i, 2).c_str(), value(r.get(), i, 3).c_str());
    if (n == 0) {
        std::printf("%s matches its source\n", name.c_str());
        return EXIT_OK;
    }
    std::printf("%s: %d differing group%s\n", name.c_str(), n, n == 1 ? "" : "s");
    return EXIT_FAILED;
}

// ---------------------------------------------------------------------------
// check-lag
// ---------------------------------------------------------------------------

int nagios_exit(int code, const std::string &text, const std::string &perf = "") {
    static const char *const labels[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};
    std::printf("MEMORIA %s - %s%s%s\n", labels[code], text.c_str(), perf.empty() ? "" : " | ", perf.c_str());
    return code;
}

// severity: how bad a state is (UNKNOWN ranks between WARNING and CRITICAL).
int severity(int state) {
    static const int rank[] = {0, 1, 3, 2};
    return rank[state];
}

int cmd_check_lag(PGconn *conn, const Options &o) {
    std::optional<std::string> names;
    if (!o.names.empty()) {
        std::string arr = "{";
        for (size_t i = 0; i < o.names.size(); i++) {
            std::string quoted = "\"";
            for (char ch : o.names[i]) {
                if (ch == '"' || ch == '\\') quoted += '\\';
                quoted += ch;
            }
            arr += (i ? "," : "") + quoted + "\"";
        }
        names = arr + "}";
    }
    Result r = run(conn,
                   "SELECT n.name, s.rollup IS NOT NULL, extract(epoch FROM s.lag)::bigint, "
                   "date_trunc('second', s.lag)::text, extract(epoch FROM $1::interval)::bigint, "
                   "extract(epoch FROM $2::interval)::bigint, s.state, coalesce(s.last_error, '') "
                   "FROM (SELECT rollup AS name FROM memoria.status WHERE $3::text[] IS NULL "
                   "      UNION SELECT unnest($3::text[])) n "
                   "LEFT JOIN memoria.status s ON s.rollup = n.name ORDER BY 1",
                   {o.warn, o.crit, names});
    int worst = NAGIOS_OK;
    std::string problems, perf, max_name, max_lag;
    long long max_secs = -1;
    int n = PQntuples(r.get());
    for (int i = 0; i < n; i++) {
        std::string name = value(r.get(), i, 0);
        long long warn = std::stoll(value(r.get(), i, 4)), crit = std::stoll(value(r.get(), i, 5));
        int state;
        std::string text;
        std::string rollup_state = value(r.get(), i, 6);
        if (value(r.get(), i, 1) != "t") {
            state = NAGIOS_UNKNOWN;
            text = name + " does not exist or is not yours";
        } else if (rollup_state == "error" || rollup_state == "capture_disabled") {
            // Failing: whatever its lag says, it is not being kept up.
            state = NAGIOS_CRITICAL;
            text = name + " " + rollup_state + ": " + value(r.get(), i, 7);
        } else if (PQgetisnull(r.get(), i, 2)) {
            state = NAGIOS_CRITICAL;
            text = name + " has no watermark yet (never refreshed or backfilled)";
        } else {
            long long secs = std::stoll(value(r.get(), i, 2));
            state = secs >= crit ? NAGIOS_CRITICAL : secs >= warn ? NAGIOS_WARNING : NAGIOS_OK;
            text = name + " lag " + value(r.get(), i, 3);
            perf += (perf.empty() ? "" : " ") + name + "=" + std::to_string(secs) + "s;" + std::to_string(warn) +
                    ";" + std::to_string(crit);
            if (secs > max_secs) max_secs = secs, max_name = name, max_lag = value(r.get(), i, 3);
        }
        if (state != NAGIOS_OK) problems += (problems.empty() ? "" : ", ") + text;
        if (severity(state) > severity(worst)) worst = state;
    }
    if (worst != NAGIOS_OK) return nagios_exit(worst, problems, perf);
    if (n == 0) return nagios_exit(NAGIOS_OK, "no rollups");
    return nagios_exit(NAGIOS_OK, std::to_string(n) + " rollup" + (n == 1 ? "" : "s") + ", max lag " + max_lag +
                                      " (" + max_name + ")",
                       perf);
}

}  // namespace

int main(int argc, char **argv) {
    Options o;
    try {
        o = parse_arguments(argc, argv);
    } catch (const UsageError &e) {
        bool nagios = argc > 1 && std::find(argv + 1, argv + argc, std::string("check-lag")) != argv + argc;
        std::fprintf(stderr, "memoriactl: %s\nTry \"memoriactl --help\" for more information.\n", e.message.c_str());
        return nagios ? (int) NAGIOS_UNKNOWN : (int) EXIT_USAGE;
    }
    if (o.command == "help") {
        std::fputs(HELP, stdout);
        return EXIT_OK;
    }
    if (o.command == "version") {
        std::printf("memoriactl %s (libpq %d)\n", VERSION, PQlibVersion());
        return EXIT_OK;
    }
    bool nagios = o.command == "check-lag";
    try {
        Connection conn = connect_to(o.conninfo);
        if (o.command == "status") return cmd_status(conn.get(), o);
        if (o.command == "refresh") return cmd_refresh(conn.get(), o);
        if (o.command == "backfill") return cmd_backfill(conn.get(), o);
        if (o.command == "verify") return cmd_verify(conn.get(), o);
        return cmd_check_lag(conn.get(), o);
    } catch (const QueryError &e) {
        if (nagios) return nagios_exit(NAGIOS_UNKNOWN, e.message);
        print_error(e);
        return exit_code_of(e);
    }
}

"""sql: every database/sql query and exec of a Go program, for any driver.

Probes database/sql.(*DB).queryDC and execDC (which DB, Tx and Conn all go through) and
(*Stmt).QueryContext / ExecContext (prepared statements, their text from Stmt.query),
each at entry and every RET: text up to 4 KiB, the number of arguments and the first 8
decoded (ints, strings, bools, floats, time.Time, nil; other types by name), duration
to the driver's answer (a query's rows are read afterwards), rows affected or the error
text. Each query also names the HTTP request it was made for (serverHandler.ServeHTTP
and runtime.newproc1 are probed to know it). Summaries per query text on Ctrl-C / -i.
"""

from __future__ import annotations

from lumos.session.args import add_target_arguments, add_timing_arguments
from lumos.tools.http import add_request_arguments, run_requests

HELP = "database/sql queries of a Go program: text, args, rows or error, latency"
EXAMPLES = """\
  lumos sql -p 1234                    # each query: text, args, rows affected or error, ms
  lumos sql -p 1234 --slow 50 --stack  # queries of 50 ms or more, with the caller's stack
  lumos sql -p 1234 --filter 'rows > 100 || op == "exec"'
  lumos sql -p 1234 -i 10 --quiet      # every 10 s: per query count, errors, p50/p90/p99
  lumos sql -c './app' --json          # JSON lines (args as values), summary at the end
  lumos sql -p 1234 --quiet --prometheus 0.0.0.0:9465   # query histograms for Prometheus
"""


def add_arguments(p) -> None:
    add_target_arguments(p, patterns=False)
    p.add_argument("target", nargs="?", metavar="BINARY", help="a Go binary (or -p/-c)")
    add_timing_arguments(p)
    add_request_arguments(p)


def run(args) -> int:
    return run_requests(args, sql=True)

// reqsvc is the test service of lumos http and lumos sql: a Go HTTP server (HTTP/1.1,
// and HTTP/2 over TLS when given a certificate) whose handlers call itself over HTTP
// from a goroutine and query PostgreSQL (lib/pq) and SQLite (mattn/go-sqlite3, cgo)
// through database/sql: DB, Tx, Conn and Stmt.
//
// Its own log on stdout is the ground truth lumos is compared against, one line per
// thing done, written after it is done:
//
//	served GET /user/42 200 8
//	client GET http://127.0.0.1:8080/ping 200
//	query pg "SELECT $1::int + 1" [41]
//	exec pg "INSERT INTO t VALUES ($1, $2)" [1 "x"] rows=1
//	error pg "SELEC 1" [] err="pq: syntax error at or near \"SELEC\""
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/lib/pq"
	_ "github.com/mattn/go-sqlite3"
)

var (
	pg, lite *sql.DB
	self     string
	logMu    sync.Mutex
	quiet    = flag.Bool("quiet", false, "log nothing (benchmarks)")
)

func logf(format string, args ...any) {
	if *quiet {
		return
	}
	logMu.Lock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
	logMu.Unlock()
}

func fmtArgs(args []any) string {
	parts := make([]string, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			parts[i] = strconv.Quote(v)
		case time.Time:
			parts[i] = v.UTC().Format(time.RFC3339Nano)
		case nil:
			parts[i] = "nil"
		default:
			parts[i] = fmt.Sprint(v)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// queryer is what DB, Tx and Conn share.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func query(ctx context.Context, db queryer, which, q string, args ...any) (string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		logf("error %s %s %s err=%s", which, strconv.Quote(q), fmtArgs(args), strconv.Quote(err.Error()))
		return "", err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return "", err
		}
		out = append(out, s)
	}
	logf("query %s %s %s", which, strconv.Quote(q), fmtArgs(args))
	return strings.Join(out, ","), rows.Err()
}

func exec(ctx context.Context, db queryer, which, q string, args ...any) error {
	res, err := db.ExecContext(ctx, q, args...)
	if err != nil {
		logf("error %s %s %s err=%s", which, strconv.Quote(q), fmtArgs(args), strconv.Quote(err.Error()))
		return err
	}
	n, _ := res.RowsAffected()
	logf("exec %s %s %s rows=%d", which, strconv.Quote(q), fmtArgs(args), n)
	return nil
}

func stmtQuery(ctx context.Context, st *sql.Stmt, which, q string, args ...any) error {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		logf("error %s %s %s err=%s", which, strconv.Quote(q), fmtArgs(args), strconv.Quote(err.Error()))
		return err
	}
	for rows.Next() {
	}
	rows.Close()
	logf("query %s %s %s", which, strconv.Quote(q), fmtArgs(args))
	return nil
}

func stmtExec(ctx context.Context, st *sql.Stmt, which, q string, args ...any) error {
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		logf("error %s %s %s err=%s", which, strconv.Quote(q), fmtArgs(args), strconv.Quote(err.Error()))
		return err
	}
	n, _ := res.RowsAffected()
	logf("exec %s %s %s rows=%d", which, strconv.Quote(q), fmtArgs(args), n)
	return nil
}

// checkSite asks our own /ping from a goroutine, as the article's goserver does.
func checkSite() int {
	ch := make(chan int)
	go func() {
		client := http.Client{Timeout: 2 * time.Second}
		resp, err := client.Get(self + "/ping")
		if err != nil {
			logf("client GET %s/ping error", self)
			ch <- 0
			return
		}
		resp.Body.Close()
		logf("client GET %s/ping %d", self, resp.StatusCode)
		ch <- resp.StatusCode
	}()
	return <-ch
}

// statusWriter remembers what the handler answered, for the log.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = 200
		}
		logf("served %s %s %d %d proto=%d", r.Method, r.URL.Path, sw.status, sw.bytes, r.ProtoMajor)
	})
}

func dbHandler(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var err error
	var out string
	switch strings.TrimPrefix(r.URL.Path, "/db/") {
	case "query":
		id, _ := strconv.Atoi(r.URL.Query().Get("id"))
		out, err = query(ctx, pg, "pg", "SELECT ($1::int + 1)::text", id)
	case "types":
		ts := time.Date(2024, 2, 29, 12, 30, 45, 123456000, time.UTC)
		out, err = query(ctx, pg, "pg",
			"SELECT concat_ws(',', $1::bigint, $2::text, $3::bool, $4::float8, $5::timestamptz, $6::text)",
			int64(-7), "héllo", true, 2.5, ts, nil)
	case "sleep":
		out, err = query(ctx, pg, "pg", "SELECT pg_sleep(0.05)::text")
	case "bad":
		_, err = query(ctx, pg, "pg", "SELEC 1")
	case "tx":
		var tx *sql.Tx
		if tx, err = pg.BeginTx(ctx, nil); err == nil {
			if err = exec(ctx, tx, "pg", "INSERT INTO items (id, name) VALUES ($1, $2)", 7, "seven"); err == nil {
				out, err = query(ctx, tx, "pg", "SELECT name FROM items WHERE id = $1", 7)
			}
			tx.Rollback()
		}
	case "stmt":
		q := "SELECT name FROM items WHERE id = $1"
		var st *sql.Stmt
		if st, err = pg.PrepareContext(ctx, q); err == nil {
			err = stmtQuery(ctx, st, "pg", q, 1)
			st.Close()
		}
		if err == nil {
			q = "UPDATE items SET name = $1 WHERE id = $2"
			if st, err = pg.PrepareContext(ctx, q); err == nil {
				err = stmtExec(ctx, st, "pg", q, "one", 1)
				st.Close()
			}
		}
	case "conn":
		var c *sql.Conn
		if c, err = pg.Conn(ctx); err == nil {
			err = exec(ctx, c, "pg", "UPDATE items SET name = $1 WHERE id > $2", "many", 100)
			c.Close()
		}
	case "lite":
		if err = exec(ctx, lite, "lite", "INSERT INTO kv (k, v) VALUES (?, ?)", "k"+r.URL.Query().Get("k"), 3); err == nil {
			out, err = query(ctx, lite, "lite", "SELECT v FROM kv WHERE k = ?", "k"+r.URL.Query().Get("k"))
		}
	case "litebad":
		err = exec(ctx, lite, "lite", "INSERT INTO nosuch VALUES (1)")
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, out)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "HTTP/1.1 address")
	tlsAddr := flag.String("tls-addr", "127.0.0.1:0", "HTTPS (HTTP/2) address, with -cert/-key")
	cert := flag.String("cert", "", "TLS certificate (PEM)")
	key := flag.String("key", "", "TLS key (PEM)")
	pgDSN := flag.String("pg", "", "PostgreSQL DSN (lib/pq)")
	liteDSN := flag.String("sqlite", "", "SQLite file")
	flag.Parse()

	var err error
	if *pgDSN != "" {
		if pg, err = sql.Open("postgres", *pgDSN); err != nil {
			log.Fatal(err)
		}
		pg.SetMaxOpenConns(4)
		if _, err = pg.Exec("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, name text); " +
			"INSERT INTO items VALUES (1, 'one'), (200, 'x') ON CONFLICT DO NOTHING"); err != nil {
			log.Fatal(err)
		}
	}
	if *liteDSN != "" {
		if lite, err = sql.Open("sqlite3", *liteDSN); err != nil {
			log.Fatal(err)
		}
		lite.SetMaxOpenConns(1)
		if _, err = lite.Exec("CREATE TABLE IF NOT EXISTS kv (k text, v int)"); err != nil {
			log.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		status := checkSite()
		fmt.Fprintf(w, "site status %d\n", status)
	})
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("/user/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user %s\n", strings.TrimPrefix(r.URL.Path, "/user/"))
	})
	mux.HandleFunc("/teapot", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		w.Write([]byte("short and stout"))
	})
	mux.HandleFunc("/db/", dbHandler)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	self = "http://" + ln.Addr().String()
	handler := logged(mux)
	if *cert != "" {
		tln, err := net.Listen("tcp", *tlsAddr)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("listening https://%s\n", tln.Addr())
		go func() { log.Fatal((&http.Server{Handler: handler}).ServeTLS(tln, *cert, *key)) }()
	}
	fmt.Printf("listening %s\n", self)
	log.Fatal((&http.Server{Handler: handler}).Serve(ln))
}

module example.com/reqsvc

go 1.19

require (
	github.com/lib/pq v1.10.7
	github.com/mattn/go-sqlite3 v1.14.16
)

// Debian's packaged sources (golang-github-lib-pq-dev, golang-github-mattn-go-sqlite3-dev):
// the build is offline.
replace github.com/lib/pq => /usr/share/gocode/src/github.com/lib/pq

replace github.com/mattn/go-sqlite3 => /usr/share/gocode/src/github.com/mattn/go-sqlite3

#!/usr/bin/env bash
# Throw-away PostgreSQL clusters for abo's end-to-end tests. See testsupport/README.md.
#
#   pg.sh start VERSION DIR PORT [--tcp]   initdb (once) and start; waits until ready
#   pg.sh stop DIR                         fast shutdown (no error if not running)
#   pg.sh status DIR                       exit 0 when running
#   pg.sh capability DIR                   the workers.cfg line: postgresql V port= host= bin= [lib=]
#   pg.sh bindir VERSION                   where VERSION's server binaries are
#
# The cluster lives in DIR: data in DIR/data, log in DIR/postgres.log, the Unix socket in
# DIR itself (so clusters of several versions, even on the same port, coexist). It listens
# on no TCP address unless --tcp (then 127.0.0.1:PORT). Authentication is `trust`; the
# superuser is $ABO_PG_SUPERUSER, by default the user running this script (root in CI: the
# user the worker's psql connects as).
#
# PostgreSQL refuses to run as root: as root, the server runs as the system user
# $ABO_PG_USER (default abo-pg, created by scripts/test), which must be able to reach DIR
# (a mktemp -d directory is mode 700: chmod 755 it first).
#
# Binaries: $ABO_PG_BINDIRS ("15=/usr/lib/postgresql/15/bin:13=/x/bin:17=/y/bin", set by
# scripts/test), else /usr/lib/postgresql/VERSION/bin, else $ABO_CACHE_DIR/pg/VERSION/bin.
# Client libraries for the capability line: $ABO_PG_LIBDIRS, same form.
set -euo pipefail

die() { echo "pg.sh: $*" >&2; exit 1; }

lookup() { # lookup LIST VERSION: the value of VERSION= in a "V=dir:V=dir" list
    local list=$1 version=$2 entry
    local IFS=:
    for entry in $list; do
        if [ "${entry%%=*}" = "$version" ]; then
            printf '%s\n' "${entry#*=}"
            return 0
        fi
    done
    return 1
}

bindir() {
    local version=$1 dir
    if dir=$(lookup "${ABO_PG_BINDIRS:-}" "$version"); then :
    elif [ -x "/usr/lib/postgresql/$version/bin/postgres" ]; then dir=/usr/lib/postgresql/$version/bin
    else dir="${ABO_CACHE_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.cache}/pg/$version/bin"
    fi
    [ -x "$dir/postgres" ] || die "no PostgreSQL $version server in $dir (run scripts/test, or set ABO_PG_BINDIRS)"
    printf '%s\n' "$dir"
}

libdir() { lookup "${ABO_PG_LIBDIRS:-}" "$1" || true; }

superuser() { printf '%s\n' "${ABO_PG_SUPERUSER:-$(id -un)}"; }

# Runs a server program as the cluster's owner, in DIR, with a clean environment.
as_owner() {
    local dir=$1; shift
    local envv=(env -i PATH=/usr/bin:/bin LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC)
    if [ "$(id -u)" = 0 ]; then
        (cd "$dir" && runuser -u "${ABO_PG_USER:-abo-pg}" -- "${envv[@]}" "$@")
    else
        (cd "$dir" && "${envv[@]}" "$@")
    fi
}

state() { # state DIR KEY: a value saved by start
    sed -n "s/^$2=//p" "$1/abo-pg.env" 2>/dev/null | head -n1
}

absdir() { mkdir -p "$1" && (cd "$1" && pwd); }

client() { # a psql that works whatever LD_LIBRARY_PATH says
    local bin=$1
    if [ -x "$bin/psql" ]; then echo "$bin/psql"
    elif [ -x /usr/lib/postgresql/15/bin/psql ]; then echo /usr/lib/postgresql/15/bin/psql
    else command -v psql
    fi
}

cmd_start() {
    [ $# -ge 3 ] || die "usage: pg.sh start VERSION DIR PORT [--tcp]"
    local version=$1 dir port=$3 tcp=${4:-}
    dir=$(absdir "$2")
    case "$dir" in *[[:space:]\'\"]*) die "DIR must not contain spaces or quotes: $dir" ;; esac
    case "$port" in ''|*[!0-9]*) die "PORT must be a number: $port" ;; esac
    [ "${#dir}" -le 90 ] || die "DIR is too long for a Unix socket path (${#dir} > 90): $dir"
    local bin lib listen=""
    bin=$(bindir "$version")
    lib=$(libdir "$version")
    [ "$tcp" = --tcp ] && listen=127.0.0.1
    if [ "$(id -u)" = 0 ]; then
        local owner=${ABO_PG_USER:-abo-pg}
        id "$owner" >/dev/null 2>&1 || die "no user $owner: run scripts/test (useradd --system $owner)"
        chown "$owner" "$dir"
        runuser -u "$owner" -- test -x "$dir" ||
            die "user $owner cannot reach $dir: make its parent directories traversable (chmod 755)"
        runuser -u "$owner" -- test -x "$bin/postgres" ||
            die "user $owner cannot run $bin/postgres: make the cache directory traversable"
    fi
    if [ -f "$dir/abo-pg.env" ] && [ "$(state "$dir" version)" != "$version" ]; then
        die "$dir holds a PostgreSQL $(state "$dir" version) cluster, not $version"
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$dir" "$bin/initdb" -D "$dir/data" -A trust -U "$(superuser)" -E UTF8 \
            --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log" >&2; die "initdb of PostgreSQL $version in $dir failed"; }
    fi
    cat >"$dir/abo-pg.env" <<EOF
version=$version
port=$port
bin=$bin
lib=$lib
EOF
    if as_owner "$dir" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        echo "PostgreSQL $version already running in $dir"
    else
        local opts="-k $dir -p $port -c listen_addresses='$listen' -c fsync=off"
        opts+=" -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB"
        opts+=" -c max_connections=40 -c unix_socket_permissions=0777"
        as_owner "$dir" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
            -o "$opts" start >/dev/null ||
            { tail -n 20 "$dir/postgres.log" >&2 || true; die "PostgreSQL $version did not start in $dir"; }
    fi
    local psql version_string
    psql=$(client "$bin")
    version_string=$(env -u LD_LIBRARY_PATH -u PGCLUSTER PGCONNECT_TIMEOUT=10 "$psql" -X -A -t \
        -h "$dir" -p "$port" -U "$(superuser)" -d postgres -c 'select version()') ||
        die "PostgreSQL $version in $dir does not answer"
    echo "PostgreSQL $version ready: host=$dir port=$port ($version_string)"
}

cmd_stop() {
    [ $# -ge 1 ] || die "usage: pg.sh stop DIR"
    local dir=$1 bin
    [ -d "$dir/data" ] || return 0
    dir=$(cd "$dir" && pwd)
    bin=$(state "$dir" bin)
    [ -n "$bin" ] || die "$dir was not started by pg.sh"
    if as_owner "$dir" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_owner "$dir" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
        echo "PostgreSQL $(state "$dir" version) stopped in $dir"
    fi
}

cmd_status() {
    [ $# -ge 1 ] || die "usage: pg.sh status DIR"
    local dir=$1 bin
    [ -d "$dir/data" ] || { echo "no cluster in $dir"; return 3; }
    dir=$(cd "$dir" && pwd)
    bin=$(state "$dir" bin)
    as_owner "$dir" "$bin/pg_ctl" -D "$dir/data" status
}

cmd_capability() {
    [ $# -ge 1 ] || die "usage: pg.sh capability DIR"
    local dir
    dir=$(cd "$1" && pwd)
    local line="postgresql $(state "$dir" version) port=$(state "$dir" port) host=$dir bin=$(state "$dir" bin)"
    [ -n "$(state "$dir" lib)" ] && line+=" lib=$(state "$dir" lib)"
    echo "$line"
}

case "${1:-}" in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    status) shift; cmd_status "$@" ;;
    capability) shift; cmd_capability "$@" ;;
    bindir) shift; bindir "$@" ;;
    *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

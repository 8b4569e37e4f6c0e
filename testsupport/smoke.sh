#!/usr/bin/env bash
# Proves the end-to-end fixtures by hand, without abo's master or worker: starts two
# PostgreSQL clusters at once, lays out a worker directory (WORKER/<builder>/build) and runs,
# for the buildouts standin-pass and standin-fail against each cluster, exactly the commands
# of abo's steps (`abo check testsupport-master --json`): bootstrap, buildout with the
# openerp:options.db_* overrides, dropdb/createdb with psql, bin/test_openerp, then
# `abo analyze-log`. Checks that each log names its own cluster's server version and that
# only the failing buildout is flagged (analyze-log exit 1).
#
#   testsupport/smoke.sh [VERSION VERSION]      default: 13 17 (any two of 13 15 17)
#
# ABO_CACHE_DIR      the cache (default .cache/), filled by testsupport/setup.sh first
# ABO_BIN            an abo binary to use instead of `cargo run -q -p abo --`
# ABO_SMOKE_KEEP=1   keep the temporary directory (it is kept anyway when a check fails)
# Bootstrap and buildout run in a network namespace without network (`unshare -n`) when
# possible, to prove they work offline.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
versions=("${1:-13}" "${2:-17}")

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
t_all=$(now)

t=$(now)
# shellcheck source=setup.sh
source "$root/testsupport/setup.sh"
echo "setup (testsupport/setup.sh): $(since "$t")s"

if [ -n "${ABO_BIN:-}" ]; then
    abo=("$ABO_BIN")
else
    t=$(now)
    cargo build -q -p abo
    abo=(cargo run -q -p abo --)
    echo "cargo build -p abo: $(since "$t")s"
fi

offline=()
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
    offline=(unshare -n)
fi

tmp=$(mktemp -d /tmp/abo-smoke.XXXXXX)
chmod 755 "$tmp" # the PostgreSQL servers run as abo-pg, which must reach their directories
ok=0
cleanup() {
    for v in "${versions[@]}"; do
        "$root/testsupport/pg.sh" stop "$tmp/pg$v" >/dev/null 2>&1 || true
    done
    if [ "$ok" = 1 ] && [ "${ABO_SMOKE_KEEP:-}" != 1 ]; then
        rm -rf "$tmp"
    else
        echo "kept $tmp"
    fi
}
trap cleanup EXIT

t=$(now)
for v in "${versions[@]}"; do
    "$root/testsupport/pg.sh" start "$v" "$tmp/pg$v" "$((25400 + v))"
done
echo "clusters started: $(since "$t")s"

"$root/testsupport/mkmaster.sh" "$tmp/master" "${versions[@]/#/$tmp/pg}" >/dev/null
master="$tmp/master"
worker="$tmp/worker"

# The worker's properties for a cluster, from its capability line in workers.cfg.
cap() { # cap VERSION OPTION
    "$root/testsupport/pg.sh" capability "$tmp/pg$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

running() { "$root/testsupport/pg.sh" status "$tmp/pg$1" >/dev/null; }

failures=0
check() { # check DESCRIPTION COMMAND...
    if "${@:2}"; then
        echo "  ok: $1"
    else
        echo "  FAILED: $1"
        failures=$((failures + 1))
    fi
}

run_build() { # run_build PG_VERSION BUILDOUT(pass|fail)
    local v=$1 kind=$2 t0 t
    local section="standin-$kind" conf="standin-$kind.cfg"
    local builder="$section-postgresql-$v"
    local workdir="$worker/$builder" testing_db="abo-$section"
    local port host bin lib
    port=$(cap "$v" port) host=$(cap "$v" host) bin=$(cap "$v" bin) lib=$(cap "$v" lib)
    # The capability environment of the buildout, dropdb, createdb and testing steps.
    local capenv=(env "PGPORT=$port" "PGHOST=$host" "PATH=$bin:$PATH"
        "LD_LIBRARY_PATH=$lib" "PGCLUSTER=$v/main")
    echo
    echo "== $builder (testing_db $testing_db, PostgreSQL $v on $host:$port)"
    t0=$(now)
    mkdir -p "$workdir/build"
    cd "$workdir/build"
    # download_bootstrap, download_buildout: the master sends these files.
    cp "$master/buildouts/bootstrap.py" bootstrap.py
    cp "$master/buildouts/$conf" "$conf"
    # cachedirs
    mkdir -p ../../buildout-caches/eggs ../../buildout-caches/openerp
    t=$(now)
    "${offline[@]}" python bootstrap.py --find-links ../../buildout-caches/eggs -c "$conf" \
        --version=6.0.1 >bootstrap.out 2>&1 || { cat bootstrap.out; return 1; }
    echo "  bootstrap: $(since "$t")s"
    t=$(now)
    "${offline[@]}" "${capenv[@]}" bin/buildout -c "$conf" \
        buildout:eggs-directory=../../buildout-caches/eggs \
        buildout:openerp-downloads-directory=../../buildout-caches/openerp \
        openerp:with_devtools=true openerp:vcs-clear-locks=true \
        openerp:vcs-clear-retry=true openerp:clean=true openerp:vcs-revert=on-merge \
        "openerp:options.db_port=$port" "openerp:options.db_host=$host" \
        openerp:options.db_user=False openerp:options.db_password=False \
        "openerp:options.db_name=$testing_db" >buildout.out 2>&1 || { cat buildout.out; return 1; }
    echo "  buildout: $(since "$t")s"
    t=$(now)
    "${capenv[@]}" psql postgres -c "DROP DATABASE IF EXISTS \"$testing_db\"" >/dev/null 2>&1
    "${capenv[@]}" psql postgres -c "CREATE DATABASE \"$testing_db\" TEMPLATE \"template1\"" >/dev/null
    echo "  dropdb, createdb: $(since "$t")s"
    rm -f test.log # clean_log
    t=$(now)
    local test_status=0 analyze_status=0
    "${capenv[@]}" bin/test_openerp -i base,standin_mod "--logfile=$workdir/build/test.log" ||
        test_status=$?
    echo "  bin/test_openerp: $(since "$t")s, exit status $test_status"
    t=$(now)
    (cd "$root" && "${abo[@]}" analyze-log "$workdir/build/test.log") >analyze.out 2>&1 ||
        analyze_status=$?
    echo "  abo analyze-log: $(since "$t")s, exit status $analyze_status"
    sed 's/^/    | /' analyze.out | head -n 8
    grep 'openerp.sql_db: PostgreSQL' test.log | sed 's/^/    log: /'
    check "the log names PostgreSQL $v" grep -q "openerp.sql_db: PostgreSQL PostgreSQL $v\." test.log
    check "the testing database was fresh" grep -q "run 1 in this database" test.log
    if [ "$kind" = pass ]; then
        check "bin/test_openerp exits 0" test "$test_status" = 0
        check "analyze-log finds no failure (exit 0)" test "$analyze_status" = 0
    else
        check "bin/test_openerp exits 1" test "$test_status" = 1
        check "analyze-log flags the failure (exit 1)" test "$analyze_status" = 1
        check "the failure is the 7.0/8.0 line" grep -q \
            "ERROR $testing_db openerp.modules.loading: At least one test failed when loading the modules." test.log
    fi
    echo "  total: $(since "$t0")s"
    cd "$root"
}

for v in "${versions[@]}"; do
    for kind in pass fail; do
        run_build "$v" "$kind" || { echo "  FAILED: a step of $kind against $v"; failures=$((failures + 1)); }
    done
done

echo
# Both clusters were up during all builds.
for v in "${versions[@]}"; do
    check "PostgreSQL $v still running" running "$v"
done
echo "smoke: ${#versions[@]} clusters, 4 builds, $failures failed checks, $(since "$t_all")s"
[ "$failures" = 0 ] && ok=1
[ "$ok" = 1 ]

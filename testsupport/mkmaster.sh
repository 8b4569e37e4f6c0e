#!/usr/bin/env bash
# Lays out a master directory for abo's end-to-end tests (testsupport/README.md):
#
#   mkmaster.sh DIR [--worker NAME] [--password PW] [--worker-listen ADDR]
#               [--http-listen ADDR] CLUSTER_DIR...
#
# DIR/buildouts/   a copy of testsupport/buildouts (MANIFEST.cfg, bootstrap.py, *.cfg):
#                  a test may edit it, e.g. to flip a buildout's standin-behaviour
# DIR/workers.cfg  testsupport/workers.cfg.in for worker NAME (default e2e-worker, password
#                  PW, default e2e-secret), one `postgresql` capability line per
#                  CLUSTER_DIR started by testsupport/pg.sh
# DIR/master.toml  worker-listen / http-listen when given (e.g. 127.0.0.1:19989)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
dir=$1
shift
worker=e2e-worker password=e2e-secret worker_listen="" http_listen=""
clusters=()
while [ $# -gt 0 ]; do
    case "$1" in
        --worker) worker=$2; shift 2 ;;
        --password) password=$2; shift 2 ;;
        --worker-listen) worker_listen=$2; shift 2 ;;
        --http-listen) http_listen=$2; shift 2 ;;
        -*) usage ;;
        *) clusters+=("$1"); shift ;;
    esac
done

mkdir -p "$dir"
rm -rf "$dir/buildouts"
cp -r "$here/buildouts" "$dir/buildouts"

capabilities=""
for cluster in "${clusters[@]}"; do
    line=$("$here/pg.sh" capability "$cluster")
    if [ -z "$capabilities" ]; then
        capabilities=$line
    else
        capabilities+=$'\n'"             $line"
    fi
done
WORKER=$worker PASSWORD=$password CAPABILITIES=$capabilities python3 - "$here/workers.cfg.in" \
    "$dir/workers.cfg" <<'EOF'
import os, sys
text = open(sys.argv[1]).read()
for key in ("WORKER", "PASSWORD", "CAPABILITIES"):
    text = text.replace("@%s@" % key, os.environ[key])
open(sys.argv[2], "w").write(text)
EOF

{
    echo "# Written by testsupport/mkmaster.sh."
    echo 'manifests = ["buildouts/MANIFEST.cfg"]'
    echo 'workers = "workers.cfg"'
    [ -z "$worker_listen" ] || echo "worker-listen = \"$worker_listen\""
    [ -z "$http_listen" ] || echo "http-listen = \"$http_listen\""
} >"$dir/master.toml"
echo "master directory $dir: worker $worker, ${#clusters[@]} PostgreSQL cluster(s)"

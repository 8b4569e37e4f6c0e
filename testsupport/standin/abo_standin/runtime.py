"""What bin/start_openerp, bin/test_openerp and bin/upgrade_openerp do.

The server scripts parse OpenERP's command line (``-c``, ``-d``, ``-i``, ``-u``,
``--logfile``, ``--stop-after-init``, ...), read ``etc/openerp.cfg``, connect to the
database with ``psql`` (the first on ``PATH``, as the capability environment sets it) and
write a log in the real server format:

    2015-03-19 13:25:03,314 23693 INFO db openerp.modules.loading: Modules loaded.

Behaviour (``[standin] behaviour`` of the config, or ``$ABO_STANDIN_BEHAVIOUR``):
``pass``, ``fail`` (a failing unit test) or ``crash`` (the registry fails to load).
Series (``[standin] series`` or ``$ABO_STANDIN_SERIES``) chooses the log format and the
exit codes: ``7.0`` (``openerp.*`` loggers, always exit 0 with ``--stop-after-init``),
``8.0`` (``openerp.*``; exit 1 when a test failed, 255 when the database cannot be
initialised) and ``17.0`` (``odoo.*``, the final test summary; exit codes as 8.0).
"""
import argparse
import configparser
import os
import shutil
import signal
import subprocess
import sys
import time

from abo_standin import parse_behaviour

FALSE = ("", "false", "none")


def _unset(value):
    return value is None or value.strip().lower() in FALSE


class Log:
    """Writes records in OpenERP's format: ``asctime pid LEVEL db logger: message``."""

    def __init__(self, path):
        self.pid = os.getpid()
        self.path = path
        if path:
            path = os.path.expanduser(path)
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
            self.stream = open(path, "a")  # WatchedFileHandler appends, as OpenERP's
        else:
            self.stream = sys.stderr

    def __call__(self, level, db, logger, message):
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        stamp += ",%03d" % (int(now * 1000) % 1000)
        self.stream.write(
            "%s %d %s %s %s: %s\n" % (stamp, self.pid, level, db or "?", logger, message)
        )
        self.stream.flush()

    def raw(self, text):
        """Continuation lines (tracebacks) come without a prefix."""
        self.stream.write(text.rstrip("\n") + "\n")
        self.stream.flush()

    def close(self):
        if self.stream is not sys.stderr:
            self.stream.close()


def _read_config(path):
    config = configparser.RawConfigParser()
    config.optionxform = str
    if path and os.path.exists(path):
        config.read(path)
    return config


def _get(config, section, option, default=None):
    if config.has_option(section, option):
        return config.get(section, option)
    return default


def _settings(config):
    behaviour = os.environ.get("ABO_STANDIN_BEHAVIOUR") or _get(config, "standin", "behaviour")
    series = os.environ.get("ABO_STANDIN_SERIES") or _get(config, "standin", "series")
    # An environment behaviour like odoo17-fail sets the series too.
    if os.environ.get("ABO_STANDIN_BEHAVIOUR", "").startswith("odoo17-") and not os.environ.get(
        "ABO_STANDIN_SERIES"
    ):
        series = None
    behaviour, series = parse_behaviour(behaviour, series)
    sleep = float(os.environ.get("ABO_STANDIN_SLEEP") or _get(config, "standin", "sleep", "0"))
    return behaviour, series, sleep


def _server_parser(prog):
    p = argparse.ArgumentParser(prog=prog, add_help=True, allow_abbrev=False)
    p.add_argument("-c", "--config", dest="config")
    p.add_argument("-d", "--database", "--db-name", dest="database")
    p.add_argument("-i", "--init", dest="init", action="append", default=[])
    p.add_argument("-u", "--update", dest="update", action="append", default=[])
    p.add_argument("--logfile", dest="logfile")
    p.add_argument("--log-level", dest="log_level")
    p.add_argument("--stop-after-init", dest="stop_after_init", action="store_true")
    p.add_argument("--test-enable", dest="test_enable", action="store_true")
    p.add_argument("--install-all", dest="install_all", action="store_true")
    p.add_argument("--without-demo", dest="without_demo")
    p.add_argument("--addons-path", dest="addons_path")
    p.add_argument("--db_host", dest="db_host")
    p.add_argument("--db_port", dest="db_port")
    p.add_argument("-r", "--db_user", dest="db_user")
    p.add_argument("-w", "--db_password", dest="db_password")
    p.add_argument("--xmlrpc-port", "--http-port", "-p", dest="http_port")
    p.add_argument("--load", dest="load")
    p.add_argument("--workers", dest="workers")
    return p


def _modules(values):
    mods = []
    for value in values:
        for mod in value.split(","):
            mod = mod.strip()
            if mod and mod not in mods:
                mods.append(mod)
    return mods


class Server:
    def __init__(self, config_path, argv, just_test, prog):
        parser = _server_parser(prog)
        # The wrapper inserts these before the user's arguments, as the recipe's does.
        prefix = ["-c", config_path]
        if just_test:
            prefix += ["--log-level", "test", "--stop-after-init", "--test-enable"]
        self.args, self.unknown = parser.parse_known_args(prefix + list(argv))
        self.config = _read_config(self.args.config)
        self.behaviour, self.series, self.sleep = _settings(self.config)
        self.odoo = self.series == "17.0"
        self.ns = "odoo" if self.odoo else "openerp"
        opt = lambda name: _get(self.config, "options", name)  # noqa: E731
        self.db = self.args.database or (None if _unset(opt("db_name")) else opt("db_name"))
        self.db_host = self.args.db_host or opt("db_host")
        self.db_port = self.args.db_port or opt("db_port")
        self.db_user = self.args.db_user or opt("db_user")
        self.db_password = self.args.db_password or opt("db_password")
        self.log = Log(self.args.logfile or (None if _unset(opt("logfile")) else opt("logfile")))
        self.queries = 0

    # -- helpers ---------------------------------------------------------------------

    def info(self, logger, message, db=True):
        self.log("INFO", self.db if db else None, logger, message)

    def test_level(self):
        # 7.0's --log-level test shows test chatter at the custom TEST level.
        return "TEST" if self.series == "7.0" else "INFO"

    def psql_env(self):
        env = dict(os.environ)
        # False in the config means unset: libpq then uses PGHOST/PGPORT/... of the
        # environment, as psycopg2 does for the real server.
        for value, var in (
            (self.db_host, "PGHOST"),
            (self.db_port, "PGPORT"),
            (self.db_user, "PGUSER"),
            (self.db_password, "PGPASSWORD"),
        ):
            if not _unset(value):
                env[var] = value
        return env

    def psql(self, sql_statements):
        """Runs psql on the database; returns (ok, stdout lines or error text)."""
        psql = shutil.which("psql")
        self.psql_path = psql
        if psql is None:
            return False, 'could not run psql: not found on PATH %r' % os.environ.get("PATH")
        cmd = [psql, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.db]
        for statement in sql_statements:
            cmd += ["-c", statement]
        try:
            proc = subprocess.run(
                cmd, env=self.psql_env(), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return False, "could not run psql: %s" % e
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace").strip()
        if proc.returncode != 0:
            return False, err or "psql exited with status %d" % proc.returncode
        self.queries += len(sql_statements)
        return True, [line for line in out.splitlines() if line.strip()]

    def traceback(self, where, error):
        self.log.raw("Traceback (most recent call last):")
        self.log.raw('  File "%s", line 1, in %s' % (__file__, where))
        for line in error.splitlines() or [""]:
            self.log.raw(line)

    def fail_init(self, error_class, error):
        """Database initialisation failed: what each series logs, and its exit code."""
        if self.series == "7.0":
            self.log("ERROR", self.db, "openerp", "Failed to initialize database `%s`." % self.db)
            self.traceback("preload_registry", "%s: %s" % (error_class, error))
            return 0
        self.log(
            "CRITICAL", self.db, "%s.service.server" % self.ns,
            "Failed to initialize database `%s`." % self.db,
        )
        self.traceback("preload_registries", "%s: %s" % (error_class, error))
        return 255  # sys.exit(-1)

    # -- the run -----------------------------------------------------------------------

    def startup(self):
        ns = self.ns
        if self.odoo:
            self.info("odoo", "Odoo version %s (abo stand-in)" % self.series, db=False)
            self.info("odoo", "Using configuration file at %s " % self.args.config, db=False)
        else:
            self.info("openerp", "OpenERP version %s (abo stand-in)" % self.series, db=False)
        self.info(ns, "addons paths: %r" % [os.path.dirname(os.path.abspath(__file__))], db=False)
        if self.odoo:
            self.info(
                "odoo",
                "database: %s@%s:%s" % (
                    self.db_user if not _unset(self.db_user) else "default",
                    self.db_host if not _unset(self.db_host) else "default",
                    self.db_port if not _unset(self.db_port) else "default",
                ),
                db=False,
            )
        else:
            for what, value in (("hostname", self.db_host), ("port", self.db_port),
                                ("user", self.db_user)):
                self.info("openerp", "database %s: %s" % (what, value if not _unset(value)
                                                            else "localhost" if what == "hostname"
                                                            else "default"), db=False)
        for option in self.unknown:
            if option.startswith("-"):
                self.log("WARNING", None, "%s.standin" % ns,
                         "stand-in ignores the option %s" % option)

    def run(self, just_test):
        self.startup()
        if not self.db:
            self.log("WARNING", None, "%s.standin" % self.ns,
                     "no database (-d or db_name in %s): nothing to do" % self.args.config)
            return 0
        # OpenERP reads `-i all` as `-i base`; the recipe's --install-all means every module.
        modules = ["base" if m == "all" else m for m in _modules(self.args.init)]
        modules = [m for i, m in enumerate(modules) if m not in modules[:i]]
        if self.args.install_all:
            modules = ["base", "web", "standin_all"]
        updates = _modules(self.args.update)
        tests = self.args.test_enable or just_test
        quoted = lambda s: "'" + s.replace("'", "''") + "'"  # noqa: E731
        ok, result = self.psql([
            "select version()",
            "create table if not exists abo_standin_runs (id serial primary key, "
            "at timestamptz not null default now(), script text, modules text, "
            "behaviour text)",
            "insert into abo_standin_runs (script, modules, behaviour) values (%s, %s, %s)"
            % (quoted("test" if just_test else "start"), quoted(",".join(modules + updates)),
               quoted(self.behaviour)),
            "select count(*) from abo_standin_runs",
        ])
        if not ok:
            if self.odoo:
                self.info("odoo.sql_db", "Connection to the database failed")
            return self.fail_init("OperationalError", result)
        version = result[0] if result else "unknown"
        runs = result[-1] if len(result) > 1 else "?"
        self.info("%s.sql_db" % self.ns, "PostgreSQL %s" % version)
        self.info(
            "%s.standin" % self.ns,
            "connected with %s (PGHOST=%s PGPORT=%s LD_LIBRARY_PATH=%s); run %s in this "
            "database; behaviour %s, series %s" % (
                self.psql_path, self.psql_env().get("PGHOST", ""),
                self.psql_env().get("PGPORT", ""), os.environ.get("LD_LIBRARY_PATH", ""),
                runs, self.behaviour, self.series,
            ),
        )
        if self.sleep > 0:
            self.info("%s.standin" % self.ns, "sleeping %gs as asked" % self.sleep)
            time.sleep(self.sleep)
        return self.load(modules, updates, tests)

    def load(self, modules, updates, tests):
        ns = self.ns
        loading = "%s.modules.loading" % ns
        started = time.time()
        self.info(loading, "loading 1 modules...")
        extra = " (+0 extra)" if self.odoo else ""
        self.info(loading, "1 modules loaded in 0.01s, 0 queries%s" % extra)
        todo = [m for m in modules + updates if m != "base"]
        targets = modules + [m for m in updates if m not in modules]
        if todo:
            self.info(loading, "loading %d modules..." % (len(todo) + 1))
        if self.behaviour == "crash":
            self.log("ERROR", self.db, "%s.modules.registry" % ns, "Failed to load registry")
            self.traceback("load_modules",
                           "ImportError: No module named standin_crash (standin-behaviour = crash)")
            return self.fail_init("ImportError", "No module named standin_crash")
        failures = 0
        total = 0
        for index, module in enumerate(targets):
            if not tests:
                continue
            fail = self.behaviour == "fail" and index == 0
            total += 2
            failures += 1 if fail else 0
            self.run_module_tests(module, fail)
        count = len(set(targets) | {"base"})
        self.info(loading, "%d modules loaded in %.2fs, %d queries%s"
                  % (count, time.time() - started, self.queries, extra))
        if failures and not self.odoo:
            self.log("ERROR", self.db, loading,
                     "At least one test failed when loading the modules.")
        else:
            self.info(loading, "Modules loaded.")
        if self.series == "8.0" and tests:
            self.info(loading, "All post-tested in 0.00s, 0 queries")
        if self.odoo and tests:
            for module in targets:
                self.info("odoo.tests.stats", "%s: 2 tests 0.00s 1 queries" % module)
            level = "ERROR" if failures else ("WARNING" if total == 0 else "INFO")
            self.log(level, self.db, "odoo.tests.result",
                     "%d failed, 0 error(s) of %d tests when loading database %r"
                     % (failures, total, self.db))
        if failures and self.series != "7.0":
            return 1
        return 0

    def run_module_tests(self, module, fail):
        ns = self.ns
        test_logger = "%s.addons.%s.tests.test_standin" % (ns, module)
        lvl = self.test_level()
        why = "the stand-in was asked to fail (behaviour fail)"
        if self.odoo:
            for method in ("test_database", "test_behaviour"):
                self.info(test_logger, "Starting TestStandin.%s ..." % method)
            if fail:
                self.info(test_logger, "=" * 70)
                self.log("ERROR", self.db, test_logger, "FAIL: TestStandin.test_behaviour")
                self.traceback("test_behaviour", "AssertionError: " + why)
                self.log.raw("")
                self.log("ERROR", self.db, "odoo.modules.loading",
                         "Module %s: 1 failures, 0 errors of 2 tests" % module)
            self.info("odoo.modules.loading",
                      "Module %s loaded in 0.01s (incl. 0.00s test), 1 queries" % module)
            return
        if self.series == "7.0":
            self.log(lvl, self.db, "openerp.modules.module",
                     "module %s: executing 1 `fast_suite` and/or `checks` sub-modules" % module)
            self.log(lvl, self.db, "openerp.modules.module",
                     "test_database (openerp.addons.%s.tests.test_standin.TestStandin) ... ok"
                     % module)
            if fail:
                self.log(lvl, self.db, "openerp.modules.module",
                         "test_behaviour (openerp.addons.%s.tests.test_standin.TestStandin) "
                         "... FAIL" % module)
                self.log(lvl, self.db, "openerp.modules.module", "` AssertionError: " + why)
                self.log("ERROR", self.db, "openerp.modules.module",
                         "module %s: at least one error occurred in a test" % module)
            return
        cls = "(openerp.addons.%s.tests.test_standin.TestStandin)" % module
        self.info("openerp.modules.module",
                  "openerp.addons.%s.tests.test_standin running tests." % module)
        self.info(test_logger, "test_database %s" % cls)
        self.info(test_logger, "test_behaviour %s" % cls)
        if fail:
            self.log("ERROR", self.db, test_logger, "FAIL: test_behaviour %s" % cls)
            self.log("ERROR", self.db, test_logger, "` Traceback (most recent call last):")
            self.log("ERROR", self.db, test_logger,
                     '`   File "%s", line 1, in test_behaviour' % __file__)
            self.log("ERROR", self.db, test_logger, "` AssertionError: " + why)
        self.info(test_logger, "Ran 2 tests in 0.002s")
        if fail:
            self.log("ERROR", self.db, test_logger, "FAILED")
            self.info(test_logger, " (failures=1)")
            self.log("ERROR", self.db, "openerp.modules.module",
                     "Module %s: 1 failures, 0 errors" % module)
        else:
            self.info(test_logger, "OK")

    def serve(self):
        """start_openerp without --stop-after-init: a server that runs until signalled."""
        stop = []

        def handler(signum, frame):
            stop.append(signum)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        self.info("%s.service.server" % self.ns,
                  "HTTP service (werkzeug) running on 0.0.0.0:%s"
                  % (self.args.http_port or "8069"), db=False)
        while not stop:
            time.sleep(0.2)
        self.info("%s.service.server" % self.ns, "Initiating shutdown", db=False)
        return 0


def _server_main(config_path, argv, just_test, prog):
    server = Server(config_path, argv, just_test, prog)
    try:
        status = server.run(just_test)
        if status == 0 and not server.args.stop_after_init:
            status = server.serve()
        return status
    finally:
        server.log.close()


def test_main(config_path, argv):
    """bin/test_openerp: start_openerp with --log-level test --stop-after-init --test-enable."""
    return _server_main(config_path, argv, True, "test_openerp")


def start_main(config_path, argv):
    """bin/start_openerp: the server (with --stop-after-init: install and exit)."""
    return _server_main(config_path, argv, False, "start_openerp")


def upgrade_main(config_path, argv):
    """bin/upgrade_openerp: anybox.recipe.openerp's upgrade script contract."""
    p = argparse.ArgumentParser(prog="upgrade_openerp")
    p.add_argument("--log-file", default="upgrade.log")
    p.add_argument("--log-level", default="info")
    p.add_argument("--console-log-level", default="info")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-d", "--db-name", dest="db_name")
    p.add_argument("--init-load-demo-data", action="store_true")
    args = p.parse_args(argv)
    server_argv = ["--logfile", args.log_file, "--stop-after-init"]
    if args.db_name:
        server_argv += ["-d", args.db_name]
    server = Server(config_path, server_argv, False, "upgrade_openerp")
    started = time.time()

    def console(level, message):
        if not args.quiet:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            print("%s %s  %s" % (stamp, level, message), flush=True)

    try:
        server.startup()
        if not server.db:
            console("ERROR", "no database (-d or db_name)")
            return 1
        ok, result = server.psql([
            "select version()",
            "create table if not exists abo_standin_runs (id serial primary key, "
            "at timestamptz not null default now(), script text, modules text, "
            "behaviour text)",
            "select count(*) from abo_standin_runs where script = 'upgrade'",
            "insert into abo_standin_runs (script, modules, behaviour) values "
            "('upgrade', 'all', '%s')" % server.behaviour,
        ])
        if not ok:
            server.fail_init("OperationalError", result)
            console("ERROR", "Please check logs at %s" % os.path.abspath(args.log_file))
            return 1
        server.info("%s.sql_db" % server.ns, "PostgreSQL %s" % result[0])
        fresh = len(result) > 1 and result[1] == "0"
        server.info("%s.upgrade" % server.ns, "Database %s: %s" % (
            server.db, "fresh database, initialization" if fresh else "upgrade"))
        status = server.load(["base"], [], False)
        if server.behaviour != "pass" or status:
            console("ERROR", "Please check logs at %s" % os.path.abspath(args.log_file))
            return 1
        what = "Initialization" if fresh else "Upgrade"
        console("INFO", "%s successful. Total time: %d seconds." % (what, time.time() - started))
        return 0
    finally:
        server.log.close()

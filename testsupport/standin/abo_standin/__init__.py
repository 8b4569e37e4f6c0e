"""A zc.buildout recipe standing in for ``anybox.recipe.openerp:server``.

Used in a part named ``openerp`` (``recipe = abo-openerp-standin``), it does what abo's
steps rely on (see shared/spec/recipe-notes.md):

* writes ``etc/<part>.cfg``: an ``[options]`` section with OpenERP's connection defaults
  (``db_host = False`` ...) overridden by every dotted part option
  (``options.db_port = 5433`` gives ``[options] db_port = 5433``, ``other.key = v`` gives
  ``[other] key = v``), plus a ``[standin]`` section with the stand-in's own settings;
* generates ``bin/start_<part>``, ``bin/upgrade_<part>`` and, only when
  ``with_devtools = true`` (abo passes ``openerp:with_devtools=true``), ``bin/test_<part>``.
  They run the interpreter that runs buildout, with this package put on ``sys.path``.

Stand-in options of the part (all optional; see testsupport/README.md):

``standin-behaviour``  ``pass`` (default), ``fail``, ``crash``, or the shortcuts
                       ``odoo17-pass`` / ``odoo17-fail`` / ``odoo17-crash``
``standin-series``     ``8.0`` (default), ``7.0`` or ``17.0``: log format and exit codes
``standin-sleep``      seconds to wait after connecting (timeouts, interruptions)

The other options of anybox.recipe.openerp (``version``, ``addons``, ``vcs-*``, ``clean``,
...) are accepted and ignored.
"""
import configparser
import os
import stat

BEHAVIOURS = ("pass", "fail", "crash")
SERIES = ("7.0", "8.0", "17.0")
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What real OpenERP's configmanager writes for these when nothing sets them.
CONFIG_DEFAULTS = (
    ("admin_passwd", ""),
    ("db_host", "False"),
    ("db_port", "False"),
    ("db_user", "False"),
    ("db_password", "False"),
    ("db_name", "False"),
)


def _user_error(message):
    try:
        import zc.buildout

        return zc.buildout.UserError(message)
    except ImportError:  # used outside buildout (unit tests of the recipe)
        return ValueError(message)


def parse_behaviour(behaviour, series):
    """Split ``odoo17-fail`` into (``fail``, ``17.0``); validate both."""
    behaviour = (behaviour or "pass").strip().lower()
    series = (series or "").strip()
    if behaviour.startswith("odoo17-"):
        behaviour = behaviour[len("odoo17-"):]
        series = series or "17.0"
    series = series or "8.0"
    if behaviour not in BEHAVIOURS:
        raise _user_error(
            "standin-behaviour = %r: expected one of %s (optionally prefixed odoo17-)"
            % (behaviour, ", ".join(BEHAVIOURS))
        )
    if series not in SERIES:
        raise _user_error(
            "standin-series = %r: expected one of %s" % (series, ", ".join(SERIES))
        )
    return behaviour, series


class Server:
    def __init__(self, buildout, name, options):
        self.name = name
        self.options = options
        b = buildout["buildout"]
        self.directory = b["directory"]
        self.bin_dir = b["bin-directory"]
        self.python = b.get("executable") or __import__("sys").executable
        # Read like the real recipe does, so buildout does not warn about it.
        b.get("openerp-downloads-directory")
        # Mark every option as used: the real recipe reads all of abo's overrides.
        for key in list(options.keys()):
            options.get(key)
        self.with_devtools = options.get("with_devtools", "false").strip().lower() == "true"
        self.behaviour, self.series = parse_behaviour(
            options.get("standin-behaviour"), options.get("standin-series")
        )
        self.sleep = options.get("standin-sleep", "0").strip() or "0"
        try:
            float(self.sleep)
        except ValueError:
            raise _user_error("standin-sleep = %r: expected a number of seconds" % self.sleep)
        self.etc_dir = os.path.join(self.directory, "etc")
        self.config_path = os.path.join(self.etc_dir, name + ".cfg")

    def _config(self):
        config = configparser.RawConfigParser()
        config.optionxform = str
        config.add_section("options")
        for key, value in CONFIG_DEFAULTS:
            config.set("options", key, value)
        for key in sorted(self.options.keys()):
            if "." not in key:
                continue
            section, option = key.split(".", 1)
            if not config.has_section(section):
                config.add_section(section)
            config.set(section, option, self.options[key])
        if not config.has_section("standin"):
            config.add_section("standin")
        for option, value in (
            ("behaviour", self.behaviour),
            ("series", self.series),
            ("sleep", self.sleep),
            ("part", self.name),
            ("buildout_dir", self.directory),
        ):
            if not config.has_option("standin", option):
                config.set("standin", option, value)
        return config

    def _script(self, path, function):
        body = (
            "#!%(python)s\n"
            "# Generated by the abo OpenERP stand-in recipe (part %(part)s).\n"
            "import sys\n"
            "sys.path[0:0] = [%(pkg)r]\n"
            "import abo_standin.runtime\n"
            "\n"
            "if __name__ == '__main__':\n"
            "    sys.exit(abo_standin.runtime.%(function)s(%(config)r, sys.argv[1:]))\n"
        ) % {
            "python": self.python,
            "part": self.name,
            "pkg": PACKAGE_DIR,
            "function": function,
            "config": self.config_path,
        }
        with open(path, "w") as f:
            f.write(body)
        mode = os.stat(path).st_mode
        os.chmod(path, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path

    def install(self):
        os.makedirs(self.etc_dir, exist_ok=True)
        os.makedirs(self.bin_dir, exist_ok=True)
        with open(self.config_path, "w") as f:
            self._config().write(f)
        created = [self.config_path]
        opts = self.options
        scripts = [(opts.get("script_name", "start_" + self.name), "start_main")]
        if self.with_devtools:
            scripts.append((opts.get("test_script_name", "test_" + self.name), "test_main"))
        if opts.get("upgrade_script", "upgrade.py run").strip():
            scripts.append(
                (opts.get("upgrade_script_name", "upgrade_" + self.name), "upgrade_main")
            )
        for script, function in scripts:
            created.append(self._script(os.path.join(self.bin_dir, script), function))
        return created

    update = install

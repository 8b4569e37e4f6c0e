"""Bootstrap a zc.buildout offline, for abo's end-to-end tests (see testsupport/README.md).

abo sends this file to the worker and runs it in the build directory as its bootstrap step:

    python bootstrap.py --eggs ../../buildout-caches/eggs -c CONF --version=X        (v1)
    python bootstrap.py --find-links ../../buildout-caches/eggs -c CONF --version=X  (v2)

It runs `buildout -c CONF bootstrap`, which writes bin/buildout, with a zc.buildout
installed offline from a local wheelhouse together with the stand-in OpenERP recipe
(abo-openerp-standin):

* $ABO_BUILDOUT_VENV's (set by testsupport/setup.sh, which installs both there from its
  wheelhouse): nothing to install, the fast way;
* otherwise, or with ABO_BOOTSTRAP_PRIVATE_VENV=1, a virtual environment of the build
  directory, .bootstrap-env, into which pip --no-index installs both from the wheelhouse:
  $ABO_BUILDOUT_WHEELHOUSE, else $ABO_BUILDOUT_VENV/../wheels, else the --find-links /
  --eggs directory. It is kept while the wheels it would get stay the same.

--version picks that zc.buildout version when available; otherwise the version at hand is
used, and said. Other options of the real bootstrap.py are accepted and ignored.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import venv


def note(message):
    print("bootstrap.py: " + message, flush=True)


def pick_version(requested, available, where):
    """The requested zc.buildout version if available, else the one we have (said)."""
    if requested in available:
        return requested
    chosen = os.environ.get("ABO_BUILDOUT_VERSION")
    chosen = chosen if chosen in available else sorted(available)[-1]
    if requested:
        note("zc.buildout %s is not in %s; using %s" % (requested, where, chosen))
    return chosen


def shared_buildout(options):
    """$ABO_BUILDOUT_VENV's buildout (zc.buildout and the stand-in installed by setup.sh)."""
    shared = os.environ.get("ABO_BUILDOUT_VENV")
    if not shared or os.environ.get("ABO_BOOTSTRAP_PRIVATE_VENV") == "1":
        return None
    buildout = os.path.join(shared, "bin", "buildout")
    if not os.path.exists(buildout):
        return None
    installed = [
        os.path.basename(path)[len("zc_buildout-"):-len(".dist-info")]
        for path in glob.glob(os.path.join(shared, "lib", "python*", "site-packages",
                                           "zc_buildout-*.dist-info"))
    ]
    version = pick_version(options.version, installed, shared)
    note("zc.buildout %s from %s" % (version, shared))
    return buildout


def private_buildout(options, candidates):
    """A venv of this build directory, with zc.buildout installed from the wheelhouse."""
    wheelhouse = None
    for directory in candidates:
        if glob.glob(os.path.join(directory, "zc_buildout-*.whl")):
            wheelhouse = os.path.abspath(directory)
            break
    if wheelhouse is None:
        sys.exit(
            "bootstrap.py: no zc.buildout wheel in %s (run testsupport/setup.sh and export "
            "ABO_BUILDOUT_WHEELHOUSE)" % (", ".join(candidates) or "no wheelhouse given")
        )
    available = [
        os.path.basename(path).split("-")[1]
        for path in glob.glob(os.path.join(wheelhouse, "zc_buildout-*.whl"))
    ]
    requirements = ["zc.buildout==" + pick_version(options.version, available, wheelhouse)]
    if glob.glob(os.path.join(wheelhouse, "abo_openerp_standin-*.whl")):
        requirements.append("abo-openerp-standin")

    env_dir = os.path.abspath(".bootstrap-env")
    python = os.path.join(env_dir, "bin", "python")
    buildout = os.path.join(env_dir, "bin", "buildout")
    # The environment is kept from one build to the next while the same wheels would go
    # into it (a rebuilt stand-in wheel, another version: made anew).
    stamp_path = os.path.join(env_dir, "abo-bootstrap.stamp")
    stamp = repr([sys.version, requirements] + sorted(
        (name, os.stat(os.path.join(wheelhouse, name)).st_size,
         os.stat(os.path.join(wheelhouse, name)).st_mtime)
        for name in os.listdir(wheelhouse) if name.endswith(".whl")
    ))
    try:
        with open(stamp_path) as f:
            if f.read() == stamp and os.path.exists(buildout):
                note("%s is up to date" % env_dir)
                return buildout
    except OSError:
        pass
    if os.path.exists(env_dir):
        shutil.rmtree(env_dir)
    venv.create(env_dir, with_pip=False)
    pip_wheel = sorted(glob.glob(os.path.join(wheelhouse, "pip-*.whl")))
    if not pip_wheel:
        sys.exit("bootstrap.py: no pip wheel in %s" % wheelhouse)
    # A pip wheel runs as `python pip.whl/pip`: no ensurepip, no network.
    subprocess.check_call(
        [python, os.path.join(pip_wheel[-1], "pip"), "install", "--quiet",
         "--disable-pip-version-check", "--no-compile", "--no-index",
         "--find-links", wheelhouse] + requirements
    )
    with open(stamp_path, "w") as f:
        f.write(stamp)
    note("installed %s from %s into %s" % (", ".join(requirements), wheelhouse, env_dir))
    return buildout


def main():
    parser = argparse.ArgumentParser(prog="bootstrap.py")
    parser.add_argument("-c", "--config-file", dest="config", default="buildout.cfg")
    parser.add_argument("-v", "--version", "--buildout-version", dest="version")
    parser.add_argument("--eggs")
    parser.add_argument("-f", "--find-links", dest="find_links")
    options, ignored = parser.parse_known_args()
    note("arguments %s" % " ".join(sys.argv[1:]))
    if ignored:
        note("ignoring %s" % " ".join(ignored))

    candidates = []
    if os.environ.get("ABO_BUILDOUT_WHEELHOUSE"):
        candidates.append(os.environ["ABO_BUILDOUT_WHEELHOUSE"])
    if os.environ.get("ABO_BUILDOUT_VENV"):
        candidates.append(os.path.join(os.environ["ABO_BUILDOUT_VENV"], os.pardir, "wheels"))
    for directory in (options.find_links, options.eggs):
        if directory:
            candidates.append(directory)

    buildout = shared_buildout(options) or private_buildout(options, candidates)
    subprocess.check_call([buildout, "-c", options.config, "bootstrap"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

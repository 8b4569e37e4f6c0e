"""Bootstrap a zc.buildout offline, for abo's end-to-end tests (see testsupport/README.md).

abo sends this file to the worker and runs it in the build directory as its bootstrap step:

    python bootstrap.py --eggs ../../buildout-caches/eggs -c CONF --version=X        (v1)
    python bootstrap.py --find-links ../../buildout-caches/eggs -c CONF --version=X  (v2)

It creates a virtual environment in .bootstrap-env (anew each time), installs zc.buildout
and the stand-in OpenERP recipe (abo-openerp-standin) into it from a local wheelhouse with
pip --no-index (no network), then runs `buildout -c CONF bootstrap`, which writes
bin/buildout. The wheelhouse is $ABO_BUILDOUT_WHEELHOUSE, else $ABO_BUILDOUT_VENV/../wheels
(both set by testsupport/setup.sh), else the --find-links / --eggs directory. --version picks
the zc.buildout wheel of that version when the wheelhouse has it; otherwise the wheelhouse's
version is used, and said. Other options of the real bootstrap.py are accepted and ignored.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import venv


def main():
    parser = argparse.ArgumentParser(prog="bootstrap.py")
    parser.add_argument("-c", "--config-file", dest="config", default="buildout.cfg")
    parser.add_argument("-v", "--version", "--buildout-version", dest="version")
    parser.add_argument("--eggs")
    parser.add_argument("-f", "--find-links", dest="find_links")
    options, ignored = parser.parse_known_args()
    print("bootstrap.py: arguments %s" % " ".join(sys.argv[1:]), flush=True)
    if ignored:
        print("bootstrap.py: ignoring %s" % " ".join(ignored), flush=True)

    candidates = []
    if os.environ.get("ABO_BUILDOUT_WHEELHOUSE"):
        candidates.append(os.environ["ABO_BUILDOUT_WHEELHOUSE"])
    if os.environ.get("ABO_BUILDOUT_VENV"):
        candidates.append(os.path.join(os.environ["ABO_BUILDOUT_VENV"], os.pardir, "wheels"))
    for directory in (options.find_links, options.eggs):
        if directory:
            candidates.append(directory)
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

    available = sorted(
        os.path.basename(path).split("-")[1]
        for path in glob.glob(os.path.join(wheelhouse, "zc_buildout-*.whl"))
    )
    version = options.version
    if version not in available:
        chosen = os.environ.get("ABO_BUILDOUT_VERSION")
        chosen = chosen if chosen in available else available[-1]
        if version:
            print(
                "bootstrap.py: zc.buildout %s is not in %s; using %s" % (version, wheelhouse, chosen),
                flush=True,
            )
        version = chosen
    requirements = ["zc.buildout==" + version]
    if glob.glob(os.path.join(wheelhouse, "abo_openerp_standin-*.whl")):
        requirements.append("abo-openerp-standin")

    env_dir = os.path.abspath(".bootstrap-env")
    if os.path.exists(env_dir):
        shutil.rmtree(env_dir)
    venv.create(env_dir, with_pip=False)
    python = os.path.join(env_dir, "bin", "python")
    pip_options = ["install", "--quiet", "--disable-pip-version-check", "--no-compile",
                   "--no-index", "--find-links", wheelhouse] + requirements
    cached = os.environ.get("ABO_BUILDOUT_VENV")
    if cached and os.path.exists(os.path.join(cached, "bin", "python")):
        # The cached venv's pip installs into the new one (faster than a pip of its own).
        command = [os.path.join(cached, "bin", "python"), "-m", "pip", "--python", python]
    else:
        pip_wheel = sorted(glob.glob(os.path.join(wheelhouse, "pip-*.whl")))
        if not pip_wheel:
            sys.exit("bootstrap.py: no pip wheel in %s" % wheelhouse)
        command = [python, os.path.join(pip_wheel[-1], "pip")]
    subprocess.check_call(command + pip_options)
    print("bootstrap.py: installed %s from %s into %s"
          % (", ".join(requirements), wheelhouse, env_dir), flush=True)
    subprocess.check_call(
        [os.path.join(env_dir, "bin", "buildout"), "-c", options.config, "bootstrap"]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Bootstrap a zc.buildout in the current directory (sent to workers by abo).

Accepts the options abo passes: -c CONFIG, --version=VERSION, --eggs DIR or
--find-links DIR, and ignores the others. Installs zc.buildout into a private
virtual environment and runs `buildout bootstrap`, which writes bin/buildout.
"""
import argparse
import os
import subprocess
import sys
import venv

parser = argparse.ArgumentParser()
parser.add_argument("-c", dest="config", default="buildout.cfg")
parser.add_argument("--version", default=None)
parser.add_argument("--eggs", default=None)
parser.add_argument("--find-links", default=None)
options, _ = parser.parse_known_args()

env_dir = os.path.abspath(".bootstrap-env")
if not os.path.exists(os.path.join(env_dir, "bin", "python")):
    venv.create(env_dir, with_pip=True)
python = os.path.join(env_dir, "bin", "python")
requirement = "zc.buildout" + ("==" + options.version if options.version else "")
subprocess.check_call([python, "-m", "pip", "install", "--quiet", requirement])
subprocess.check_call([os.path.join(env_dir, "bin", "buildout"), "-c", options.config, "bootstrap"])
sys.exit(0)

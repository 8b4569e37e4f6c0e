"""abo-openerp-standin: a zc.buildout recipe that stands in for anybox.recipe.openerp.

It generates etc/openerp.cfg and bin/{start,test,upgrade}_openerp scripts that behave like
OpenERP/Odoo's for abo's end-to-end tests: they connect to PostgreSQL with `psql`, write a
log in the real server format and pass or fail on demand. See ../README.md.
"""
from setuptools import setup

setup(
    name="abo-openerp-standin",
    version="1.0",
    description="Stand-in OpenERP server recipe for abo's end-to-end tests",
    packages=["abo_standin"],
    python_requires=">=3.8",
    entry_points={
        "zc.buildout": [
            "default = abo_standin:Server",
            "server = abo_standin:Server",
        ],
    },
)

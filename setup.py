"""Which packages and data go into the wheel (the metadata is in pyproject.toml).

The built picker (frontend/dist, from `npm run build`) and the nginx template are mapped in as
data-only packages, thumbs.web and thumbs.edge, so a plain `pip install .` serves the picker
and runs `thumbs stack`. A checkout whose picker is not built yet still installs: the picker
is then left out (the page says how to build it) instead of the install failing.
"""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
packages = [
    "thumbs", "thumbs.demo", "proxy", "library_api", "library_api.migrations", "library_api.migrations.versions",
    "httpkit", "thumbs.edge",
]
package_dir = {"thumbs.edge": "nginx"}
package_data = {
    "library_api": ["migrations/*.ini", "migrations/*.py", "migrations/*.mako", "migrations/versions/*.py"],
    "thumbs.edge": ["*.template"],
}
if (HERE / "frontend" / "dist" / "index.html").is_file():
    packages += ["thumbs.web", "thumbs.web.assets"]
    package_dir.update({"thumbs.web": "frontend/dist", "thumbs.web.assets": "frontend/dist/assets"})
    package_data.update({"thumbs.web": ["*.html", "*.svg", "*.ico", "*.png", "*.txt", "*.webmanifest"],
                         "thumbs.web.assets": ["*"]})

setup(packages=packages, package_dir=package_dir, package_data=package_data)

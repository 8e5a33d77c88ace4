"""Files thumbs serves or renders: inside the installed wheel, or in a source checkout.

The wheel maps ``frontend/dist`` to ``thumbs/web`` and ``nginx/`` to ``thumbs/edge``
(pyproject.toml); an editable or source checkout has them at the top of the repository.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[-1]


def frontend_dist() -> Path:
    """The built picker (index.html + hashed assets)."""
    installed = PACKAGE_DIR / "web"
    return installed if (installed / "index.html").is_file() else SOURCE_ROOT / "frontend" / "dist"


def nginx_template() -> Path:
    """The edge's http-level config, with ``${THUMBS_*}`` placeholders."""
    name = "thumbs.conf.template"
    return _first_existing(PACKAGE_DIR / "edge" / name, SOURCE_ROOT / "nginx" / name)

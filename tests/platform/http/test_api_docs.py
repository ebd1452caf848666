"""
`/api/docs/` serves Swagger UI from this project (drf-spectacular-sidecar, a
version pinned in pyproject.toml), not from a CDN: it works offline and runs no
third-party script. tests/e2e/test_browser.py renders it in Chromium.
"""

from __future__ import annotations

import re

from django.contrib.staticfiles import finders


def test_the_docs_page_loads_every_file_from_this_server(client):
    page = client.get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    assert [asset for asset in assets if not asset.startswith("/")] == []
    assert "//" not in "".join(assets)
    assert "cdn" not in html.lower()


def test_every_file_the_docs_page_names_is_a_static_file_of_the_project(client):
    html = client.get("/api/docs/").content.decode()

    for asset in re.findall(r'(?:src|href)="/static/([^"]+)"', html):
        assert finders.find(asset), asset

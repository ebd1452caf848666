"""Finding and following the links of an admin page, for the tests of the links between records."""

from __future__ import annotations

import html
import re

from django.test import Client

ANCHOR = re.compile(r'<a href="([^"]*)"[^>]*>(.*?)</a>', re.S)


def href(body: str, text: str) -> str:
    """The address of the one link on the page whose text is `text` (fails if none, or several)."""
    found = [
        html.unescape(url)
        for url, shown in ANCHOR.findall(body)
        if html.unescape(shown.strip()) == text
    ]
    assert len(found) == 1, f"{len(found)} links read {text!r}"
    return found[0]


def follow(client: Client, body: str, text: str) -> str:
    """The page the link `text` leads to (it answers 200)."""
    url = href(body, text)
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()

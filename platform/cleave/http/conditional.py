"""
Conditional, cached reads of a public resource whose data has a revision.

A DRF view that mixes in `RevisedRead`, names `revision` (a function
answering a string that changes with every write to what the view reads,
in the writing transaction: the catalogue's `queries.revision`) and answers
its GET through `self.revised(request, answer)` answers

- with `ETag` (the revision, the request's path and query, the media type
  and this release, hashed) and `Cache-Control: public, no-cache`: any cache
  may keep the answer but must ask again each time, so no one is served a
  price older than the last write;
- 304 without a body when `If-None-Match` names that tag: no query but the
  revision's, no serializer, no pagination `COUNT`;
- otherwise the answer's rendered bytes cached under that tag in Django's
  cache (`default`: per process, or Redis with `CLEAVE_CACHE_URL`), computed
  once per revision by `answer()`: a write makes a new revision, and so new
  keys, in every process at its next request. Entries also expire after
  `TIMEOUT` seconds, so an old revision's answers do not linger.

Only 200 answers are cached and tagged; errors (a bad filter, a page past
the end) go through the view as before. The answers are the same for every
caller (the API renders JSON only, and these views read public data). Reading the revision costs one
primary-key query per request, which is what keeps every process current
without a message between them.

Written here rather than with Django's `condition` decorator or cache
middleware: those key on the URL alone and know nothing of DRF's content
negotiation, and the cache middleware caches for a time, not up to a write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from django.core.cache import cache
from django.http import HttpResponse, HttpResponseNotModified
from django.http.response import HttpResponseBase
from django.utils.cache import patch_vary_headers
from rest_framework import status
from rest_framework.response import Response

from cleave.core.registry import release

TIMEOUT = 300
CACHE_CONTROL = "public, no-cache"
RELEASE = release()


class RevisedRead:
    # A DRF view whose GET answers through `self.revised(request, answer)`:
    # tagged with the data's revision, 304 or from the cache, else `answer()`.
    # (A comment, not a docstring: the API's document would take it for every
    # such view's description.)

    revision: Callable[[], str]

    def revised(self, request, answer: Callable[[], Response]) -> HttpResponseBase:
        named = "|".join(
            (RELEASE, type(self).revision(), request.accepted_media_type, request.get_full_path())
        )
        digest = hashlib.blake2b(named.encode(), digest_size=16).hexdigest()
        tag, key = f'"{digest}"', f"cleave.read:{digest}"
        if tag in _tags(request.headers.get("If-None-Match", "")):
            return _tagged(HttpResponseNotModified(), tag)
        cached = cache.get(key)
        if cached is not None:
            content_type, body = cached
            return _tagged(HttpResponse(body, content_type=content_type), tag)
        response = answer()
        if response.status_code == status.HTTP_200_OK:
            # the rendered bytes: a hit is then neither serialized nor rendered again
            response.add_post_render_callback(
                lambda rendered: cache.set(
                    key, (rendered["Content-Type"], rendered.content), TIMEOUT
                )
            )
            _tagged(response, tag)
        return response


def _tagged(response: HttpResponseBase, tag: str) -> HttpResponseBase:
    response["ETag"] = tag
    response["Cache-Control"] = CACHE_CONTROL
    patch_vary_headers(response, ("Accept",))
    return response


def _tags(header: str) -> set[str]:
    """The entity tags of an `If-None-Match` header (weak ones compare as strong)."""
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}

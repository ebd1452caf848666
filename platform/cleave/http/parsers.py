"""
The API's request parsers. A module of its own: DRF reads DEFAULT_PARSER_CLASSES
while its views module loads, which cleave.api imports.
"""

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """
    DRF's JSON parser, refusing a document nested too deeply for the decoder
    (a few thousand brackets exhaust Python's recursion limit) as malformed
    input, a 400, instead of letting RecursionError become a 500; and saying
    what is wrong in its own words, not the decoder's (DRF's message quotes
    the codec's or the decoder's exception text).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(
                "JSON parse error - the document is nested too deeply."
            ) from None
        except exceptions.ParseError:
            raise exceptions.ParseError(
                "JSON parse error - the body is not a JSON document in UTF-8."
            ) from None

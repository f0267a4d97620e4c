"""The API's body parsers: every body it reads is a set of named fields, so a body that is not
one (a bare number, `null`, a list) is a 400 rather than read as an empty form.

Its own module, like pagination: REST_FRAMEWORK settings import it while DRF's views load.
"""

import io

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class ObjectJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if not isinstance(data, dict):
            raise ParseError(
                f'The JSON body must be an object of fields, e.g. {{"notes": "..."}}, not {_kind(data)}.'
            )
        return data


class FieldsFormParser(parsers.FormParser):
    """`application/x-www-form-urlencoded` of name=value pairs; a bare value (`5`) is refused,
    where Django would read it as a field named "5" that every serializer then ignores."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read()
        if any(pair and b"=" not in pair for pair in raw.split(b"&")):
            raise ParseError("The form body must be name=value pairs, such as notes=...")
        return super().parse(io.BytesIO(raw), media_type, parser_context)


class FieldsMultiPartParser(parsers.MultiPartParser):
    """multipart/form-data of parts, or an empty form; a bare value between two boundaries, which
    Django cannot split into parts, would otherwise read as an empty form."""

    def parse(self, stream, media_type=None, parser_context=None):
        head = _Head(stream)
        parsed = super().parse(head, media_type, parser_context)
        if not parsed.data and not parsed.files and _bare_value(head.bytes):
            raise ParseError("The multipart body holds no form fields or files.")
        return parsed


def _bare_value(body: bytes) -> bool:
    """True for a body with no part header whose lines are not all boundaries (an empty form)."""
    lines = [line.strip() for line in body.splitlines()]
    if any(line.lower().startswith(b"content-disposition:") for line in lines):
        return False
    return any(line and not line.startswith(b"--") for line in lines)


class _Head:
    """Reads through a stream, keeping its first bytes: enough to tell an empty form from junk."""

    KEEP = 512

    def __init__(self, stream):
        self.stream = stream
        self.bytes = b""

    def read(self, *args):
        data = self.stream.read(*args)
        if len(self.bytes) < self.KEEP:
            self.bytes += data[: self.KEEP - len(self.bytes)]
        return data


def _kind(value):
    if value is None:
        return "null"
    return {bool: "true or false", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), type(value).__name__
    )

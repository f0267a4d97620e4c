"""Text the database or a JSON answer must hold whatever a client sent."""

NUL_REPLACEMENT = "\ufffd"


def without_nul(value):
    """``value`` with every NUL character replaced by U+FFFD, in text and in the keys and items of
    dicts, lists and tuples (tuples come back as lists). PostgreSQL's text and JSON cannot hold NUL,
    and the API's schema says no text field does.

    Replaced, not dropped: the text is a clinician's or a client's, and silently joining the
    characters on either side ("5\\x001 mm" read as "51 mm") would change what it says; the
    replacement character shows that something unreadable stood there.
    """
    if isinstance(value, str):
        return value.replace("\x00", NUL_REPLACEMENT)
    if isinstance(value, dict):
        return {without_nul(str(key)): without_nul(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nul(item) for item in value]
    return value

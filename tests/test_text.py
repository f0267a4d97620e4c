"""brainscan.text.without_nul: the one NUL rule of the API's error bodies and the audit log."""

from brainscan.text import without_nul


def test_nul_is_replaced_not_dropped_in_text_keys_and_items():
    value = {"a\x00b": ["5\x001 mm", ("x\x00",)], "n": 3}
    assert without_nul(value) == {"a\ufffdb": ["5\ufffd1 mm", ["x\ufffd"]], "n": 3}

"""Hypothesis strategies for JSON values as the service encodes them: text of any kind, integers past 64 bits
(the standard library's encoder writes them; the fast paths must hand them over), lists and objects."""

from __future__ import annotations

from hypothesis import strategies as st

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12)

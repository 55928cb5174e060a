"""Hypothesis strategies for what a hostile or broken client sends: any text (NUL, controls,
lone surrogates, separators), JSON values with NaN, infinities and huge integers, and bodies
serialized loosely (Python's json writes NaN and lone surrogates) or not JSON at all."""

from __future__ import annotations

import json

from hypothesis import strategies as st

# Every code point, surrogates included, and a heavy share of the ones that broke the store.
NASTY_CHARS = st.sampled_from(["\x00", "\ud800", "\udfff", "\n", "\r", "\t", " ", "\x1b", "\x7f", "\u2028", "\ufeff"])
any_text = st.text(alphabet=st.one_of(st.characters(codec=None), NASTY_CHARS), max_size=80)
# Mostly-plausible ids, so that accepted values are generated too, not only refusals.
plausible_id = st.one_of(st.from_regex(r"[A-Za-z0-9_.:@-]{1,70}", fullmatch=True), any_text)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.one_of(any_text, plausible_id), children, max_size=4)
    ),
    max_leaves=20,
)


def loose_dumps(value: object) -> bytes:
    """What a careless serializer sends: NaN and Infinity as bare words, surrogates as escapes."""
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def nested(draw, inner: bytes = b"1") -> bytes:
    depth = draw(st.integers(min_value=0, max_value=2000))
    return b"[" * depth + inner + b"]" * depth


@st.composite
def hostile_bodies(draw, type_field: str) -> bytes:
    """Bodies shaped like events, or not: the parser must refuse or accept each without a 5xx."""
    event = {"id": draw(plausible_id), type_field: draw(st.one_of(plausible_id, st.sampled_from(["invoice.paid"])))}
    extra = draw(st.dictionaries(st.one_of(plausible_id, any_text), json_values, max_size=3))
    body = loose_dumps({**extra, **event} if draw(st.booleans()) else event)
    return draw(
        st.one_of(
            st.just(body),
            st.just(b"\xef\xbb\xbf" + body),
            st.binary(max_size=200),
            nested(),
            st.just(body[:-1] + b', "deep": ' + draw(nested()) + b"}"),
            st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b'"\\ud800"', b'"\\u0000"', b"1e999"]).map(
                lambda word: body[:-1] + b', "x": ' + word + b"}"
            ),
            st.builds(lambda v: loose_dumps(v), json_values),
            st.just(body.replace(b'"', b"'", 1)),
            st.just(body + draw(st.binary(max_size=5))),
        )
    )


@st.composite
def tainted(draw, valid: str) -> str:
    """A valid value with one hostile character put in, or spaces around it: the cases that pass
    a loose check (a regex, a strip) and then fail the store."""
    position = draw(st.integers(min_value=0, max_value=len(valid)))
    char = draw(st.one_of(NASTY_CHARS, st.characters(codec=None)))
    return draw(st.sampled_from([valid[:position] + char + valid[position:], f" {valid}", f"{valid}\n"]))


@st.composite
def one_field_spoiled(draw, valid: dict) -> dict:
    """`valid` with one field (or a nested context value) made hostile."""
    body = dict(valid)
    name = draw(st.sampled_from(sorted(body)))
    if isinstance(body[name], str):
        body[name] = draw(st.one_of(tainted(body[name]), json_values))
    else:
        body[name] = draw(st.one_of(json_values, st.dictionaries(any_text, json_values, max_size=3)))
    return body

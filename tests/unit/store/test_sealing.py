"""The sealed-value format (ADR 0039): round trip, and every way a value must not open."""

from __future__ import annotations

import binascii
import os
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.errors import DataKeyUnavailable
from payerbridge.store.data_keys import NoncePool
from payerbridge.store.sealing import (
    NONCE_BYTES,
    SEALED_PREFIX,
    SealedField,
    Sealer,
    is_sealed,
    kek_fingerprint,
    key_id_of,
    unwrap_key,
    wrap_key,
)

RECORD = SealedField("identity_member_records", "record")
REQUEST = SealedField("identity_reviews", "request_record")
BODY = SealedField("fhir_resources", "body", binary=True)
LINE = SealedField("bulk_output_lines", "body", binary=True)
KEY_A, KEY_B = b"a" * 32, b"b" * 32
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _sealer(keys: dict[str, bytes] | None = None, current: str = "k1", **more: bytes) -> Sealer:
    return Sealer(
        keys or {"k1": KEY_A}, current, nonces=os.urandom, fetch=lambda key_id: more.get(key_id)
    )


@given(plaintext=st.binary(max_size=2000), row_key=st.text(max_size=64))
def test_a_sealed_value_opens_to_what_was_sealed(plaintext: bytes, row_key: str) -> None:
    sealer = _sealer()
    sealed = sealer.seal(plaintext, field=RECORD, row_key=row_key)
    assert is_sealed(sealed) and key_id_of(sealed) == "k1"
    assert sealed.isascii()
    assert sealer.open(sealed, field=RECORD, row_key=row_key) == plaintext


@given(plaintext=st.text(min_size=1, max_size=200))
def test_the_same_value_sealed_twice_differs_and_shows_nothing_of_it(plaintext: str) -> None:
    sealer = _sealer()
    first = sealer.seal(plaintext, field=RECORD, row_key="m1")
    second = sealer.seal(plaintext, field=RECORD, row_key="m1")
    assert first != second  # a fresh nonce each time
    if len(plaintext) >= 4:
        assert plaintext not in first


@given(plaintext=st.binary(min_size=1, max_size=500), position=st.integers(min_value=0))
def test_a_value_altered_anywhere_does_not_open(plaintext: bytes, position: int) -> None:
    sealer = _sealer()
    sealed = sealer.seal(plaintext, field=RECORD, row_key="m1")
    body_start, body_end = len(SEALED_PREFIX) + len("k1:"), len(sealed.rstrip("="))
    at = body_start + position % (body_end - body_start)
    # The top bit of the character's six: a base64 text's last character may carry unused
    # low bits, never an unused top one.
    swapped = _ALPHABET[_ALPHABET.index(sealed[at]) ^ 32]
    altered = sealed[:at] + swapped + sealed[at + 1 :]
    with pytest.raises(DataKeyUnavailable):
        sealer.open(altered, field=RECORD, row_key="m1")


@given(plaintext=st.binary(max_size=200))
def test_a_value_moved_to_another_column_or_row_does_not_open(plaintext: bytes) -> None:
    sealer = _sealer()
    sealed = sealer.seal(plaintext, field=RECORD, row_key="m1")
    with pytest.raises(DataKeyUnavailable, match="altered or moved"):
        sealer.open(sealed, field=REQUEST, row_key="m1")
    with pytest.raises(DataKeyUnavailable, match="altered or moved"):
        sealer.open(sealed, field=RECORD, row_key="m2")


def test_a_value_under_another_key_of_the_same_id_does_not_open() -> None:
    sealed = _sealer().seal(b"{}", field=RECORD, row_key="m1")
    with pytest.raises(DataKeyUnavailable, match="altered or moved"):
        _sealer({"k1": KEY_B}).open(sealed, field=RECORD, row_key="m1")


def test_a_value_naming_an_unknown_key_is_refused_unless_it_can_be_fetched() -> None:
    sealed = _sealer({"k2": KEY_B}, "k2").seal(b"{}", field=RECORD, row_key="m1")
    with pytest.raises(DataKeyUnavailable, match="data key k2, which the database does not"):
        _sealer().open(sealed, field=RECORD, row_key="m1")
    # A key another process's rotation made is fetched once, then known.
    assert _sealer(k2=KEY_B).open(sealed, field=RECORD, row_key="m1") == b"{}"


@pytest.mark.parametrize(
    "stored", ['{"family": "Doe"}', "pb1:", "pb1:k1", "pb1:k1:!!!", "pb1:k1:AA"]
)
def test_plaintext_and_malformed_values_are_refused(stored: str) -> None:
    with pytest.raises(DataKeyUnavailable):
        _sealer().open(stored, field=RECORD, row_key="m1")


def test_a_rotated_sealer_seals_under_its_new_key_and_opens_the_old() -> None:
    sealer = _sealer({"k1": KEY_A, "k2": KEY_B})
    old = sealer.seal(b"old", field=RECORD, row_key="m1")
    sealer.use("k2")
    new = sealer.seal(b"new", field=RECORD, row_key="m1")
    assert (key_id_of(old), key_id_of(new)) == ("k1", "k2")
    assert sealer.open(old, field=RECORD, row_key="m1") == b"old"


@given(dek=st.binary(min_size=32, max_size=32))
def test_a_data_key_unwraps_only_under_its_kek_and_its_id(dek: bytes) -> None:
    wrapped = wrap_key(KEY_A, "k1", dek, nonce=os.urandom(12))
    assert unwrap_key(KEY_A, "k1", wrapped) == dek
    with pytest.raises(DataKeyUnavailable, match="does not unwrap"):
        unwrap_key(KEY_B, "k1", wrapped)
    with pytest.raises(DataKeyUnavailable, match="does not unwrap"):
        unwrap_key(KEY_A, "k2", wrapped)


def test_a_kek_fingerprint_names_the_key_without_showing_it() -> None:
    assert kek_fingerprint(KEY_A) == kek_fingerprint(KEY_A) != kek_fingerprint(KEY_B)
    assert len(kek_fingerprint(KEY_A)) == 16 and KEY_A.hex()[:8] not in kek_fingerprint(KEY_A)


@given(
    plaintext=st.binary(min_size=1, max_size=300),
    position=st.integers(min_value=0),
    inserted=st.characters(codec="ascii"),
)
def test_text_slipped_into_a_sealed_value_never_opens_to_another_plaintext(
    plaintext: bytes, position: int, inserted: str
) -> None:
    # A character outside base64's alphabet is refused by the decoder, one inside it
    # shifts the bytes and the tag refuses them: a value opens to what was sealed or not
    # at all (ADR 0044's codec, as binascii's strict one did).
    sealer = _sealer()
    sealed = sealer.seal(plaintext, field=RECORD, row_key="m1")
    body_start = len(SEALED_PREFIX) + len("k1:")
    at = body_start + position % (len(sealed) - body_start + 1)
    altered = sealed[:at] + inserted + sealed[at:]
    try:
        opened = sealer.open(altered, field=RECORD, row_key="m1")
    except DataKeyUnavailable:
        return
    assert opened == plaintext


# -- binary fields: ``pb1:<key id>:`` and the nonce and ciphertext as bytes (ADR 0044)


@given(plaintext=st.binary(max_size=2000), row_key=st.text(max_size=64))
def test_a_binary_value_opens_to_what_was_sealed_from_bytes_or_a_view(
    plaintext: bytes, row_key: str
) -> None:
    sealer = _sealer()
    sealed = sealer.seal_bytes(plaintext, field=BODY, row_key=row_key)
    assert isinstance(sealed, bytes) and sealed.startswith(b"pb1:k1:")
    assert is_sealed(sealed) and key_id_of(sealed) == key_id_of(memoryview(sealed)) == "k1"
    # No base64: the prefix, a nonce, the ciphertext and a 16-byte tag.
    assert len(sealed) == len(b"pb1:k1:") + NONCE_BYTES + len(plaintext) + 16
    assert sealer.open(sealed, field=BODY, row_key=row_key) == plaintext
    assert sealer.open(memoryview(sealed), field=BODY, row_key=row_key) == plaintext


def test_a_binary_value_keeps_the_text_values_associated_data() -> None:
    # 0052 decodes a text value's base64 and nothing else: it opens as a binary one.
    text = _sealer().seal(b"{}", field=SealedField("fhir_resources", "body"), row_key="P/a")
    head, blob = text.rsplit(":", 1)
    converted = f"{head}:".encode() + binascii.a2b_base64(blob)
    assert _sealer().open(converted, field=BODY, row_key="P/a") == b"{}"


@given(plaintext=st.binary(max_size=200))
def test_a_binary_value_moved_to_another_row_or_column_does_not_open(plaintext: bytes) -> None:
    sealer = _sealer()
    sealed = sealer.seal_bytes(plaintext, field=BODY, row_key="Patient/a")
    with pytest.raises(DataKeyUnavailable, match="altered or moved"):
        sealer.open(sealed, field=BODY, row_key="Patient/b")
    with pytest.raises(DataKeyUnavailable, match="altered or moved"):
        sealer.open(sealed, field=LINE, row_key="Patient/a")
    with pytest.raises(DataKeyUnavailable, match="altered or moved"):
        _sealer({"k1": KEY_B}).open(sealed, field=BODY, row_key="Patient/a")


@given(plaintext=st.binary(max_size=300), position=st.integers(min_value=0))
def test_a_binary_value_altered_anywhere_does_not_open_to_anything_else(
    plaintext: bytes, position: int
) -> None:
    sealer = _sealer()
    sealed = sealer.seal_bytes(plaintext, field=BODY, row_key="Patient/a")
    at = position % len(sealed)
    altered = sealed[:at] + bytes([sealed[at] ^ 1]) + sealed[at + 1 :]
    with pytest.raises(DataKeyUnavailable):
        sealer.open(altered, field=BODY, row_key="Patient/a")


def test_a_binary_value_naming_an_unknown_key_is_fetched_or_refused() -> None:
    sealed = _sealer({"k2": KEY_B}, "k2").seal_bytes(b"{}", field=BODY, row_key="P/a")
    with pytest.raises(DataKeyUnavailable, match="data key k2, which the database does not"):
        _sealer().open(sealed, field=BODY, row_key="P/a")
    assert _sealer(k2=KEY_B).open(sealed, field=BODY, row_key="P/a") == b"{}"


@pytest.mark.parametrize(
    "stored",
    [
        b'{"resourceType": "Patient"}',  # stored before sealing began: never read as such
        b"",
        b"pb1:",
        b"pb1:k1",
        b"pb1::" + b"\0" * 40,
        b"pb1:k1:" + b"\0" * 20,
        b"pb1:" + b"k" * 80 + b":" + b"\0" * 40,
        b"pb1:\xff:" + b"\0" * 40,
        b"PB1:k1:" + b"\0" * 40,
    ],
)
def test_plaintext_and_malformed_binary_values_are_refused(stored: bytes) -> None:
    with pytest.raises(DataKeyUnavailable):
        _sealer().open(stored, field=BODY, row_key="P/a")
    assert key_id_of(stored) is None or stored.startswith(b"pb1:k1:")


def test_the_text_and_binary_apis_refuse_each_others_fields() -> None:
    sealer = _sealer()
    with pytest.raises(TypeError, match="fhir_resources.body is sealed as bytes"):
        sealer.seal(b"{}", field=BODY, row_key="P/a")
    with pytest.raises(TypeError, match="identity_member_records.record is sealed as text"):
        sealer.seal_bytes(b"{}", field=RECORD, row_key="m1")
    text = sealer.seal(b"{}", field=RECORD, row_key="m1")
    binary = sealer.seal_bytes(b"{}", field=BODY, row_key="P/a")
    with pytest.raises(TypeError, match="sealed as bytes"):
        sealer.open(text, field=BODY, row_key="P/a")  # a text value read from a binary column
    with pytest.raises(TypeError, match="sealed as text"):
        sealer.open(binary, field=RECORD, row_key="m1")
    with pytest.raises(TypeError, match="sealed as text"):
        sealer.open(text.encode(), field=RECORD, row_key="m1")


def test_a_rotated_sealer_seals_binary_values_under_its_new_key_and_opens_the_old() -> None:
    sealer = _sealer({"k1": KEY_A, "k2": KEY_B})
    old = sealer.seal_bytes(b"old", field=BODY, row_key="P/a")
    sealer.use("k2")
    new = sealer.seal_bytes(b"new", field=BODY, row_key="P/a")
    assert (key_id_of(old), key_id_of(new)) == ("k1", "k2")
    assert sealer.open(old, field=BODY, row_key="P/a") == b"old"


def test_the_nonce_pool_never_hands_out_a_nonce_twice_across_threads() -> None:
    pool = NoncePool(batch=64)  # refilled many times over
    drawn: list[bytes] = []

    def draw() -> None:
        drawn.extend(pool(NONCE_BYTES) for _ in range(2000))

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(drawn) == 8000 and len(set(drawn)) == 8000
    assert {len(nonce) for nonce in drawn} == {NONCE_BYTES}

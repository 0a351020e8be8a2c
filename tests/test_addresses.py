import pytest
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from indexer.addresses import AddressError, checksum, parse_address

hex40 = st.binary(min_size=20, max_size=20).map(lambda b: b.hex())


@given(hex40)
def test_checksum_matches_eth_utils_and_every_case_form_parses(body):
    assert checksum(body) == to_checksum_address("0x" + body)
    for form in ("0x" + body, "0x" + body.upper(), checksum(body), "  0X" + body + "\n"):
        assert parse_address(form) == "0x" + body


@pytest.mark.parametrize(("value", "message"), [
    ("", "empty"),
    ("abc", "does not start with 0x"),
    ("0x12", "has 2 hex digits; an address has 40"),
    ("0x" + "g" * 40, "not hex digits"),
    ("0x" + "1" * 41, "has 41 hex digits"),
    (None, "is not a string"),
    # the EIP-55 test vector with its last letter's case flipped
    ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", "wrong EIP-55 checksum"),
])
def test_bad_addresses_are_named(value, message):
    with pytest.raises(AddressError, match=message) as info:
        parse_address(value, "wallet")
    assert str(info.value).startswith("wallet: ")


def test_eip55_vector():
    assert parse_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed") == "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"

"""The simulators' own signatures, checked against published vectors and the documents' steps
written out by hand (not against our adapters, which these signatures exist to check)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from invsync.simulators.signing import (
    hex_matches,
    hmac_b64,
    hmac_hex,
    tiktok_request_sign,
    tiktok_webhook_signature,
)

# RFC 4231, test case 2 (HMAC-SHA256).
RFC4231_KEY = "Jefe"
RFC4231_DATA = b"what do ya want for nothing?"
RFC4231_MAC = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"

# The example credentials of TikTok Shop's "Sign your API request" page.
TT_SECRET = "e59af819cc"
TT_KEY = "68xu9ks5p4i8"
TT_CIPHER = "ROW_xkMbgAAAeVAQra0eZWebFQq5aIK"
TT_STAMP = "1696909648"
TT_PATH = "/event/202309/webhooks"
TT_BODY = b'{"address":"https://partner.tiktokshop.com","event_type":"PACKAGE_UPDATE"}'


def _mac(key: str, message: str | bytes) -> str:
    data = message.encode() if isinstance(message, str) else message
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest()


def test_hex_and_base64_macs_match_rfc_4231() -> None:
    assert hmac_hex(RFC4231_KEY, RFC4231_DATA) == RFC4231_MAC
    assert base64.b64decode(hmac_b64(RFC4231_KEY, RFC4231_DATA)).hex() == RFC4231_MAC


def test_a_hex_signature_matches_in_either_case_and_nothing_else_does() -> None:
    assert hex_matches(RFC4231_KEY, RFC4231_DATA, RFC4231_MAC)
    assert hex_matches(RFC4231_KEY, RFC4231_DATA, RFC4231_MAC.upper())
    assert not hex_matches(RFC4231_KEY, RFC4231_DATA + b" ", RFC4231_MAC)
    assert not hex_matches(RFC4231_KEY, RFC4231_DATA, None)
    assert not hex_matches(RFC4231_KEY, RFC4231_DATA, "")
    assert not hex_matches(RFC4231_KEY, RFC4231_DATA, "é" * 64)
    # Base64 of the right MAC is not the hex the invsync header carries.
    assert not hex_matches(RFC4231_KEY, RFC4231_DATA, hmac_b64(RFC4231_KEY, RFC4231_DATA))


def test_tiktok_request_sign_follows_the_documented_string() -> None:
    query = {
        "timestamp": TT_STAMP,
        "shop_cipher": TT_CIPHER,
        "app_key": TT_KEY,
        "access_token": "TTP_not-signed",
        "sign": "not-signed-either",
    }
    spelled_out = (
        f"{TT_SECRET}{TT_PATH}app_key{TT_KEY}shop_cipher{TT_CIPHER}timestamp{TT_STAMP}"
        f"{TT_BODY.decode()}{TT_SECRET}"
    )
    assert tiktok_request_sign(TT_SECRET, TT_PATH, query, TT_BODY) == _mac(TT_SECRET, spelled_out)


@pytest.mark.parametrize(
    "misreading",
    [
        "{s}{p}access_tokenTTPapp_key{k}shop_cipher{c}timestamp{t}{b}{s}",  # token signed
        "{s}{p}timestamp{t}shop_cipher{c}app_key{k}{b}{s}",  # parameters unsorted
        "{s}{p}app_key{k}shop_cipher{c}timestamp{t}{s}",  # body left out
        "{p}app_key{k}shop_cipher{c}timestamp{t}{b}",  # not wrapped in the secret
        "{s}app_key{k}shop_cipher{c}timestamp{t}{b}{s}",  # path left out
    ],
)
def test_tiktok_request_sign_differs_from_common_misreadings(misreading: str) -> None:
    query = {
        "app_key": TT_KEY,
        "shop_cipher": TT_CIPHER,
        "timestamp": TT_STAMP,
        "access_token": "TTP",
    }
    wrong = misreading.format(
        s=TT_SECRET, p=TT_PATH, k=TT_KEY, c=TT_CIPHER, t=TT_STAMP, b=TT_BODY.decode()
    )
    assert tiktok_request_sign(TT_SECRET, TT_PATH, query, TT_BODY) != _mac(TT_SECRET, wrong)


def test_tiktok_leaves_a_multipart_body_out_of_the_signature() -> None:
    query = {"app_key": TT_KEY, "timestamp": TT_STAMP}
    without_body = tiktok_request_sign(TT_SECRET, "/product/202309/images/upload", query)
    multipart = tiktok_request_sign(
        TT_SECRET,
        "/product/202309/images/upload",
        query,
        b"--boundary\r\n...",
        content_type="multipart/form-data; boundary=boundary",
    )
    assert multipart == without_body
    assert without_body == _mac(
        TT_SECRET,
        f"{TT_SECRET}/product/202309/images/uploadapp_key{TT_KEY}timestamp{TT_STAMP}{TT_SECRET}",
    )


def test_tiktok_webhook_signature_is_the_hex_mac_of_app_key_then_body() -> None:
    body = b'{"type":1,"data":{"order_id":"576"}}'
    assert tiktok_webhook_signature(TT_KEY, TT_SECRET, body) == _mac(
        TT_SECRET, TT_KEY.encode() + body
    )

"""TikTok Shop's wire formats (Partner API 202309) as msgspec Structs.

Every answer is the envelope ``{"code", "message", "request_id", "data"}`` where ``code`` 0 is
success; ``data`` is decoded by the caller into the type of its call. Sources: the 202309 API
reference as transcribed by lywzx/tiktok-partner-api (``products/SearchProducts.ts``,
``products/UpdateInventory.ts``, ``products/GetProduct.ts``, ``orders/GetOrderDetail.ts``),
EcomPHP/tiktokshop-php (``src/Auth.php``, ``src/Webhook.php``).
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from ..base import Retryable

__all__ = ["decode_data", "decode_head", "decode_notification", "encode"]

_T = TypeVar("_T")


class Head(msgspec.Struct, kw_only=True):
    """The envelope of every answer; ``data`` is decoded by the caller into its own type."""

    code: int
    message: str = ""
    request_id: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class Inventory(msgspec.Struct, kw_only=True):
    """One warehouse's quantity of a SKU (product detail, search results)."""

    warehouse_id: str = ""
    quantity: int = 0


class Sku(msgspec.Struct, kw_only=True):
    """A SKU of a product: its id, seller SKU and quantities."""

    id: str
    seller_sku: str = ""
    inventory: list[Inventory] = []


class Product(msgspec.Struct, kw_only=True):
    """A product with its SKUs (search results, Get Product)."""

    id: str
    status: str = ""
    skus: list[Sku] = []


class SearchData(msgspec.Struct, kw_only=True):
    """``data`` of Search Products: one page of products."""

    products: list[Product] | None = None
    total_count: int = 0
    next_page_token: str = ""


class SearchBody(msgspec.Struct, kw_only=True):
    """The Search Products body: the seller SKUs looked for."""

    seller_skus: list[str]


class InventoryUpdate(msgspec.Struct, kw_only=True):
    """One warehouse's absolute quantity in an inventory update."""

    warehouse_id: str
    quantity: int


class SkuUpdate(msgspec.Struct, kw_only=True):
    """One SKU of an inventory update, by SKU id."""

    id: str
    inventory: list[InventoryUpdate]


class UpdateBody(msgspec.Struct, kw_only=True):
    """The Update Inventory body."""

    skus: list[SkuUpdate]


class ExtraError(msgspec.Struct, kw_only=True):
    """A warehouse-level reason of a refused SKU."""

    warehouse_id: str = ""
    code: int = 0
    message: str = ""


class ErrorDetail(msgspec.Struct, kw_only=True):
    """Which SKU an update error is about, with its warehouse-level reasons."""

    sku_id: str = ""
    extra_errors: list[ExtraError] = []


class UpdateError(msgspec.Struct, kw_only=True):
    """One ``data.errors[]`` entry of an inventory update."""

    code: int = 0
    message: str = ""
    detail: ErrorDetail | None = None


class UpdateData(msgspec.Struct, kw_only=True):
    """``data`` of Update Inventory: the SKUs it refused."""

    errors: list[UpdateError] | None = None


class District(msgspec.Struct, kw_only=True):
    """One level of an address (L1 is the state or province)."""

    address_level: str = ""
    address_level_name: str = ""
    address_name: str = ""


class Address(msgspec.Struct, kw_only=True):
    """``recipient_address`` of an order, as far as routing needs."""

    region_code: str = ""
    postal_code: str = ""
    district_info: list[District] = []


class LineItem(msgspec.Struct, kw_only=True):
    """One line item of an order: one unit of one SKU."""

    id: str = ""
    sku_id: str = ""
    product_id: str = ""
    seller_sku: str = ""
    display_status: str = ""


class Order(msgspec.Struct, kw_only=True):
    """An order of Get Order Detail."""

    id: str
    status: str = ""
    line_items: list[LineItem] = []
    recipient_address: Address | None = None


class OrdersData(msgspec.Struct, kw_only=True):
    """``data`` of Get Order Detail."""

    orders: list[Order] | None = None


class TokenData(msgspec.Struct, kw_only=True):
    """``data`` of the token refresh (``access_token_expire_in`` is an epoch time)."""

    access_token: str
    access_token_expire_in: int
    refresh_token: str = ""
    refresh_token_expire_in: int = 0


class Notification(msgspec.Struct, kw_only=True):
    """A webhook: its ``type`` and its ``data``, decoded by type."""

    type: int
    shop_id: str = ""
    timestamp: int = 0
    tts_notification_id: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class OrderStatus(msgspec.Struct, kw_only=True):
    """``data`` of an order status change (type 1)."""

    order_id: str
    order_status: str
    is_on_hold_order: bool = False
    update_time: int = 0


encode = msgspec.json.Encoder().encode
decode_head = msgspec.json.Decoder(Head).decode
decode_notification = msgspec.json.Decoder(Notification).decode


def decode_data(raw: msgspec.Raw, kind: type[_T], what: str) -> _T:
    """``data`` of an answer as ``kind``; Retryable when it is not one (the call is made again)."""
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Retryable(f"TikTok Shop answered an unreadable {what}: {exc}") from exc

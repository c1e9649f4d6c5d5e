"""Location-side adapters: hand routed order parts to the warehouse, store or 3PL that ships them.

One module per ``[[locations]] fulfillment`` kind (``webhook``, ``edi940``, ``mqtt``), each a
``Sender``; ``edi945.py`` reads the shipment advice a warehouse sends back. docs/fulfillment.md.
"""

from .base import MissingSecret, Refused, Sender, Undelivered
from .factory import make_sender, missing_secret

__all__ = ["MissingSecret", "Refused", "Sender", "Undelivered", "make_sender", "missing_secret"]

"""invsync: real-time omnichannel inventory sync daemon."""

__version__ = "0.1.0"

"""Local simulators of the marketplaces' APIs (``invsync simulate``): one module per channel."""

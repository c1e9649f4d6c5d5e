"""invsync.core: the config schema, events, errors, clock, ids and validation rules.

The bottom layer: it imports nothing else of invsync.
"""

"""The durable machinery behind ``actors``: messages, mailboxes, fabric, store, worker.

Internal: it never imports ``actors`` and may change between releases.
"""

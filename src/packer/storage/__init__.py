"""Packs at URLs (any fsspec URL): the store with retries and the index cache (``store``), writing
a locally built pack to a URL, manifest last (``upload``), and copying a pack to local disk,
verified and resumable (``stage``). The write path never imports this package: the front door
(:mod:`packer.api`) resolves a URL and hands local paths in.

Order: ``store`` -> ``upload``, ``stage``.
"""

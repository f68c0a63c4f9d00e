"""The pack format, readers and writers alike: ``manifest.json`` (``manifest``), the per-sample
index and its dtypes per format version (``index``, ``dtypes``), sample keys (``keys``) and building
outputs under a temporary name then renaming them into place (``staging``).

Order: ``dtypes`` and ``keys`` are leaves; ``manifest`` uses ``dtypes``; ``index`` uses
``manifest``, ``dtypes`` and :mod:`packer._util`; ``staging`` uses ``manifest``.
"""

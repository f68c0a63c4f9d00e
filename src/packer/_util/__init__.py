"""Private helpers with no knowledge of packs: durable file writes and checksums (``files``), byte
sizes as people write them (``sizes``), per-sample arrays on disk read a block at a time
(``columns``), an ordered path list in one byte string (``pathtable``) and its on-disk forms
(``pathdisk``), an external merge sort (``keysort``) and the page cache (``pagecache``).

They import only :mod:`packer.errors` and each other: ``files``, ``sizes``, ``keysort``,
``pagecache`` and ``columns`` are leaves; ``pathtable`` uses ``columns``; ``pathdisk`` both.
"""

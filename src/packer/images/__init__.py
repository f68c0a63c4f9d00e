"""Images, without knowing about packs: what headers and trailers say without decoding
(``headers``), checks that a file is a complete, sane image (``checks``) and convert-time
transforms (``transforms``). Only Pillow and numpy are imported; no process-wide state is changed
(limits are passed explicitly, see :func:`packer.images.checks.open_limited`).

Order: ``headers`` -> ``checks`` -> ``transforms``.
"""

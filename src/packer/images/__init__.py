"""Images, without knowing about packs: what headers and trailers say without decoding
(``headers``), opening under a pixel limit passed in (``opening``), checks that a file is a
complete, sane image (``checks``) and convert-time transforms (``transforms``). Only Pillow and
numpy are imported, and no process-wide state is changed: ``PIL.Image.MAX_IMAGE_PIXELS`` is the
caller's, limits are passed explicitly (:func:`packer.images.opening.open_image`), and
:func:`packer.images.checks.silence_libtiff` is for the ``pack`` command and packer's workers.

Order: ``headers`` -> ``opening`` -> ``checks`` -> ``transforms``.
"""

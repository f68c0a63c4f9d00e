"""``pack verify``: what it reports (``report``), a local pack's files and samples (``local``), a
pack at a URL as its objects are (``remote``), and :func:`~packer.check.verify.verify_pack`, which
picks one (``verify``).

Order: ``report`` -> ``local`` -> ``remote`` -> ``verify``.
"""

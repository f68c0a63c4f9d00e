"""Reading packs: :class:`~packer.read.pack.Pack` on local disk (``pack``), over a URL
(``remote``), and :func:`~packer.read.open.open_pack` above both (``open``); subsets and orders
as index arrays (``views``, ``ordering``); and what the read commands do: ``extract``,
``describe`` (``pack inspect``), ``stats`` and ``preview``.

Order: ``ordering`` is a leaf; ``pack`` -> ``remote`` -> ``open`` -> ``views``, ``extract``,
``describe``, ``stats`` -> ``preview``. Nothing here imports :mod:`packer.conversion`.
"""

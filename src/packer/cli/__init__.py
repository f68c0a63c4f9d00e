"""The ``pack`` command, a thin typer layer over :mod:`packer.api`: the application and error
handling (``app``), shared options (``options``), rendering (``render``, ``plot``), the read
commands (``read``) and the write commands with the entry point (``main``).

It imports only :mod:`packer.api`, :mod:`packer.errors`, :mod:`packer.progress` and itself.
Order: ``options``, ``render`` -> ``app``, ``plot`` -> ``read`` -> ``main``.
"""

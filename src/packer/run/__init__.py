"""Where work runs: in this process, in a local process pool (``pools``), or on a Dask cluster
(``cluster``), all behind :class:`concurrent.futures.Executor`. Nothing here knows what the work
is: the convert layer hands in the function to run. Packer's own worker processes set up
decoding as theirs (:func:`packer.images.checks.own_process`); the caller's process is left alone.

Order: ``pools`` is a leaf; ``cluster`` uses ``pools``.
"""

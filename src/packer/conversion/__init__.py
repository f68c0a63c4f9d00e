"""Folder tree -> pack, on local paths only. The package is ``conversion``, not ``convert``:
:func:`packer.convert` is the public function, and a subpackage of that name would replace it
on the package object as soon as it was imported.

What each module holds: the options that shape a pack's bytes (``options``); shard boundaries,
a pure function (``cuts``); everything decided before a byte is written (``plan``, saved by
``plan_store``); one shard's work and what it produced (``job``, ``result``); its samples
(``items``) and the writer (``shard``, with content checks from ``findings``); running the jobs
(``runner``) and keeping finished shards for ``--resume`` (``resume``); the state ``--update``
compares against (``state``), what it rewrites (``update``) and reuses (``reused``); the index,
manifest and rename into place (``commit``), the report (``report``) and the driver
(``driver``: plan -> check -> write -> commit); then ``samples`` (from memory) and ``parts``
(plan, part, merge).

Order, leaves first: ``cuts``, ``result``, ``findings`` -> ``job``, ``options`` -> ``items``,
``plan`` -> ``plan_store``, ``shard``, ``resume``, ``reused``, ``report`` -> ``state`` ->
``runner``, ``update``, ``commit`` -> ``driver``, ``parts``, ``samples``. It never imports
:mod:`packer.read`, :mod:`packer.storage`, :mod:`packer.check` or :mod:`packer.bench`.
"""

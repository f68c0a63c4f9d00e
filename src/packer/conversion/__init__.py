"""Folder tree -> pack, on local paths only. The package is ``conversion``, not ``convert``:
:func:`packer.convert` is the public function, and a subpackage of that name would replace it
on the package object as soon as it was imported.

Order, leaves first: ``cuts`` (shard boundaries, a pure function) -> ``plan`` (everything decided
before a byte is written) -> ``findings`` -> ``shard`` (one shard written) -> ``resume``,
``state`` -> ``reused`` -> ``update`` (what ``--update`` rewrites) -> ``report`` -> ``driver``
(plan -> check -> write -> commit) -> ``samples``, ``parts`` (plan, part, merge).
It never imports :mod:`packer.read` or :mod:`packer.storage`.
"""

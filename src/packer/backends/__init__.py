"""Pack formats behind one small interface (``base``) and one registry (``registry``, with the
``packer.backends`` entry-point group): one module per built-in backend (``zip``, ``tar``,
``lmdb``, ``hdf5``, ``memmap``, ``arrow``, ``parquet``), and what several of them share:
streaming sha256 while writing (``hashing``), byte-range reads (``ranges``), member names
(``names``), the Arrow/Parquet table layout (``columnar``) and WebDataset/wids loader indexes
(``tar_loaders``).

Order: ``base``, ``names``, ``hashing`` are leaves -> ``ranges``, ``registry``, ``columnar``,
``tar_loaders`` -> the backends, which import only :mod:`packer.images`, :mod:`packer.format`,
:mod:`packer._util` and :mod:`packer.errors` from the rest of packer.
"""

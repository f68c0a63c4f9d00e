"""``pack bench``: every format measured on the user's own data beside the plain folder
(``run``), and the report with medians and ratios (``report``).

Order: ``report`` -> ``run``.
"""

"""What a convert reads: a folder tree walked in ImageFolder's order (``scanner``), a CSV/TSV list
of ``path,label`` rows (``listing``), and the records of everything left out or warned about
(``omissions``).

Order: ``omissions`` -> ``scanner`` -> ``listing``.
"""

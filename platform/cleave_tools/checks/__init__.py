"""
What keeps the contracts, the code and the documents together: the
operations against the views serving them (`conformance`), event schemas
against the committed lock (`eventlock`), and the generated context map
(`contextmap`). Run by `manage.py contracts` in `make lint`.
"""

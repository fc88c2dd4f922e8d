"""Zoom identities: which service users can mint ZAKs (the pool), who holds which user (the
claims ledger, its only writer), and the ZAKs shared among bots (the ZAK cache)."""

"""Durable state in Redis: customers (record, events, journal, lock), the outbound stream, the due schedule
and the daily funding ledger. See ``keys.py`` for the key layout."""

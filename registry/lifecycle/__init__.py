"""Lifecycle: retention policies, legal holds, immutable tags, garbage collection, scrub.

Everything here decides from the metadata views and the event log, and
changes state only through MetadataStore, so every deletion, hold and
override is an event (docs/lifecycle.md, ADR-0007).
"""

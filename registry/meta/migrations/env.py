"""Alembic environment for the metadata schema.

MetadataStore.open runs migrations programmatically and hands us its
connection (already inside a transaction holding the write lock), so there is
no alembic.ini: ``config.attributes["connection"]`` is the only way in.
Offline mode (``--sql``) renders against ``sqlalchemy.url`` if one is set.
"""

from __future__ import annotations

from alembic import context

import registry.auth.tables  # noqa: F401  (the auth tables share this MetaData)
from registry.meta.tables import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
else:
    context.configure(connection=connection, target_metadata=metadata)

with context.begin_transaction():
    context.run_migrations()

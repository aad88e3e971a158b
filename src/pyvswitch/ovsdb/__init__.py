"""The configuration database: OVSDB's schema, storage and transactions for pyvswitch."""

"""Django's PostgreSQL backend with the query deadline on every connection (see base)."""

"""Security and privacy logic, free of transports: the HTTP/gRPC edges, the event path and the
offline pipeline call these.

- :mod:`.auth`        API-key / JWT (HS256) verification → a :class:`~.auth.Principal`
- :mod:`.ratelimit`   per-client token buckets
- :mod:`.pseudonym`   keyed hashing (HMAC-SHA256) of user ids before logs and the lake
- :mod:`.lake_crypto` Parquet modular encryption of the lake (key from a Secret)
- :mod:`.forget`      right to be forgotten: online state removal + tombstones
- :mod:`.redis_conn`  Redis AUTH / TLS connection settings for every client we build
"""

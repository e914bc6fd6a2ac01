"""``vidrec users forget ID``: the erasure call without the API (operators, scripts)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

users_app = typer.Typer(help="Users: right to be forgotten.", no_args_is_help=True)


@users_app.command("forget")
def forget(
    user_id: Annotated[int, typer.Argument(min=0, help="The user id to erase.")],
) -> None:
    """Delete the user's online features and session state and leave a tombstone that the
    event processor, the lake writer and training honour (settings from VIDREC_* env)."""
    from vidrec.config import load_config
    from vidrec.security import redis_conn
    from vidrec.security.forget import Eraser
    from vidrec.security.pseudonym import Pseudonymizer

    cfg = load_config()
    client = redis_conn.client(cfg.redis, socket_timeout=cfg.redis.socket_timeout_s)
    try:
        eraser = Eraser(client, Pseudonymizer(cfg.events.id_salt), cfg.features.n_buckets,
                        cfg.events.tombstone_key)  # fmt: skip
        typer.echo(json.dumps(eraser.forget(user_id).body()))
    finally:
        client.close()

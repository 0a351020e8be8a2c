"""The configured tokens and feeds mirrored in SQL (analysts join on them), and the off-chain book as
stored (accounts and positions)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from indexer.config import Settings
from indexer.store import models as m
from indexer.store.writes import upsert


def register(conn: Connection, settings: Settings) -> None:
    """Mirror the configured tokens, feeds and pools into SQL."""
    cid = settings.chain.chain_id
    upsert(conn, m.Token.__table__, [dict(
        chain_id=cid, address=t.address, symbol=t.symbol, name=t.name, decimals=t.decimals, underlying=t.underlying,
        asset_class=t.asset_class, accounting=str(t.accounting), balance_source=str(t.balance_source), feed=t.feed,
        reserve_feed=t.reserve_feed, vault_asset=None if t.vault_asset is None else settings.token(t.vault_asset).address)
        for t in settings.tokens], ["chain_id", "address"])
    upsert(conn, m.Feed.__table__, [dict(
        chain_id=cid, address=f.address, name=f.name, kind=str(f.kind), quote=None if f.quote is None else str(f.quote),
        decimals=f.decimals, heartbeat=f.heartbeat, calendar=f.calendar, token=f.token) for f in settings.feeds],
        ["chain_id", "address"])
    # the configuration's part of each pool; the sync adds what the chain says it is (store/pools.py)
    upsert(conn, m.Pool.__table__, [dict(
        chain_id=cid, address=p.address, name=p.name, token=settings.token(p.token).address, protocol=p.protocol,
        quote_feed=p.quote_feed) for p in settings.pools], ["chain_id", "address"])


def token_rows(conn: Connection, cid: int) -> list[dict]:
    """The chain's registered tokens, by symbol."""
    return [dict(r) for r in conn.execute(select(m.Token.__table__).where(m.Token.chain_id == cid)
                                          .order_by(m.Token.symbol)).mappings()]


def feed_rows(conn: Connection, cid: int) -> list[dict]:
    """The chain's registered feeds, by name."""
    return [dict(r) for r in conn.execute(select(m.Feed.__table__).where(m.Feed.chain_id == cid)
                                          .order_by(m.Feed.name)).mappings()]


def feed_names(conn: Connection, cid: int) -> dict[str, str]:
    """{feed address: name}."""
    return dict(conn.execute(select(m.Feed.address, m.Feed.name).where(m.Feed.chain_id == cid)).all())


def account_rows(conn: Connection) -> dict[str, dict]:
    """{wallet: its account row}."""
    return {r["wallet"]: dict(r) for r in conn.execute(select(m.Account.__table__)).mappings()}


def account_row(conn: Connection, wallet: str) -> dict | None:
    row = conn.execute(select(m.Account.__table__).where(m.Account.wallet == wallet)).mappings().first()
    return None if row is None else dict(row)


def position_rows(conn: Connection, wallet: str | None = None) -> list[dict]:
    """Every position (of one wallet), by wallet and instrument."""
    q = select(m.Position.__table__)
    if wallet is not None:
        q = q.where(m.Position.wallet == wallet)
    return [dict(r) for r in conn.execute(q.order_by(m.Position.wallet, m.Position.instrument)).mappings()]

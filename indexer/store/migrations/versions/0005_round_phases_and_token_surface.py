"""round phases, multiplier nonces, oracle pause

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

- `price_rounds.phase`: the phase of a feed proxy's round (`round_id >> 64`: the aggregator it came from),
  so that the highest stored round of every phase is one grouped query. Filled for the rows there are.
- `token_state.multiplier_nonce`, `last_multiplier_nonce`, `new_multiplier_nonce`: a Backed xStock's
  multiplier nonces (`getCurrentMultiplier()`'s third value, `lastMultiplierNonce()`, `newMultiplierNonce()`).
- `token_state.oracle_paused`: an ERC-8056 token's `oraclePaused()` (its price feed stands still during a
  corporate action).

Columns are added and dropped in place (SQLite 3.35+ does both): no table is rebuilt, so the analyst views
that read these tables stay as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from indexer.store.types import Uint256

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("price_rounds", sa.Column("phase", sa.Integer(), nullable=False, server_default="0"))
    bind = op.get_bind()
    rounds = sa.table("price_rounds", sa.column("chain_id"), sa.column("feed"), sa.column("round_id", Uint256()),
                      sa.column("phase"))
    phases = {}
    for cid, feed, rid in bind.execute(sa.select(rounds.c.chain_id, rounds.c.feed, rounds.c.round_id)):
        if rid >> 64:
            phases.setdefault((cid, feed, rid >> 64), []).append(rid)
    for (cid, feed, phase), ids in phases.items():
        for i in range(0, len(ids), 500):
            bind.execute(sa.update(rounds).where(rounds.c.chain_id == cid, rounds.c.feed == feed,
                                                 rounds.c.round_id.in_(ids[i:i + 500])).values(phase=phase))
    for name in ("multiplier_nonce", "last_multiplier_nonce", "new_multiplier_nonce"):
        op.add_column("token_state", sa.Column(name, Uint256(), nullable=True))
    op.add_column("token_state", sa.Column("oracle_paused", sa.Boolean(), nullable=True))


def downgrade() -> None:
    for name in ("oracle_paused", "new_multiplier_nonce", "last_multiplier_nonce", "multiplier_nonce"):
        op.drop_column("token_state", name)
    op.drop_column("price_rounds", "phase")

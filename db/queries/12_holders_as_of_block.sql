-- Question (as of a block): Who held a token at block block, and how much?
-- Parameters: chain_id, symbol (token symbol), block (block number), top_n (number of rows)
-- Columns: wallet, symbol, accounting, units_raw, units, balance, last_change_block
-- From balance_changes: each holder's last row at or before block. units_raw is exact: raw token units for
-- plain and ui_multiplier tokens (= balanceOf), shares for rebasing_shares tokens. balance (token units) for a
-- rebasing token is shares x the multiplier of the last token_state row at or before block (NULL when none is
-- stored that far back); the exact balanceOf at any synced block is what `risk run --block` values.
WITH tok AS (
    SELECT chain_id, address, symbol, decimals, accounting,
           CAST('1' || substr('000000000000000000000000000000000000000000000000000000000000000000000000000000', 1, decimals) AS DOUBLE PRECISION) AS scale
    FROM tokens
    WHERE chain_id = :chain_id AND symbol = :symbol
),
last_change AS (
    SELECT c.wallet, c.units_raw, c.block_number,
           ROW_NUMBER() OVER (PARTITION BY c.wallet ORDER BY c.block_number DESC, c.log_index DESC) AS k
    FROM balance_changes c
    JOIN tok ON c.chain_id = tok.chain_id AND c.token = tok.address
    WHERE c.block_number <= :block
),
mult AS (
    SELECT s.multiplier_raw
    FROM token_state s
    JOIN tok ON s.chain_id = tok.chain_id AND s.token = tok.address
    WHERE s.block_number <= :block
    ORDER BY s.block_number DESC
    LIMIT 1
)
SELECT l.wallet, tok.symbol, tok.accounting, l.units_raw,
       CAST(l.units_raw AS DOUBLE PRECISION) / tok.scale AS units,
       CASE WHEN tok.accounting = 'rebasing_shares'
            THEN CAST(l.units_raw AS DOUBLE PRECISION) / tok.scale * CAST(mult.multiplier_raw AS DOUBLE PRECISION) / 1e18
            ELSE CAST(l.units_raw AS DOUBLE PRECISION) / tok.scale END AS balance,
       l.block_number AS last_change_block
FROM last_change l
CROSS JOIN tok
LEFT JOIN mult ON 1 = 1
WHERE l.k = 1 AND CAST(l.units_raw AS DOUBLE PRECISION) > 0
ORDER BY l.units_raw DESC, l.wallet
LIMIT :top_n

-- Question: Which wallets' equity moved most between the two latest risk runs, and did their status change?
-- Parameters: top_n (number of rows)
-- Columns: wallet, previous_block, block_number, previous_status, status, previous_equity, equity, equity_change
-- "Latest" and "previous" order runs by (block_number, id), as the latest_run view does, and leave out
-- runs whose block a reorg removed (orphaned_at set), as it does.
WITH ordered AS (
    SELECT id, chain_id, block_number,
           ROW_NUMBER() OVER (PARTITION BY chain_id ORDER BY block_number DESC, id DESC) AS k
    FROM risk_runs
    WHERE orphaned_at IS NULL
)
SELECT a.wallet, p.block_number AS previous_block, c.block_number,
       b.status AS previous_status, a.status,
       b.equity AS previous_equity, a.equity, a.equity - b.equity AS equity_change
FROM ordered c
JOIN ordered p ON p.chain_id = c.chain_id AND p.k = 2
JOIN risk_wallets a ON a.run_id = c.id
JOIN risk_wallets b ON b.run_id = p.id AND b.wallet = a.wallet
WHERE c.k = 1
ORDER BY ABS(a.equity - b.equity) DESC, a.wallet
LIMIT :top_n

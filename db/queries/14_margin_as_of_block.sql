-- Question (as of a block): How did wallets stand, by margin status, in the latest risk run at or before block block?
-- Parameters: chain_id, block (block number)
-- Columns: run_id, block_number, block_timestamp, market_state, policy_version, status, wallets, collateral, equity, excess, stressed_excess
-- The run is the one with the highest (block_number, id) at or before block, among runs whose block is still
-- on the chain (orphaned_at NULL); run `risk run --block N` first when no run valued that block.
WITH run AS (
    SELECT id, block_number, block_timestamp, market_state, policy_version
    FROM risk_runs
    WHERE chain_id = :chain_id AND block_number <= :block AND orphaned_at IS NULL
    ORDER BY block_number DESC, id DESC
    LIMIT 1
)
SELECT run.id AS run_id, run.block_number, run.block_timestamp, run.market_state, run.policy_version,
       w.status,
       COUNT(*) AS wallets,
       SUM(w.collateral) AS collateral,
       SUM(w.equity) AS equity,
       SUM(w.excess) AS excess,
       SUM(w.stressed_excess) AS stressed_excess
FROM run
JOIN risk_wallets w ON w.run_id = run.id
GROUP BY run.id, run.block_number, run.block_timestamp, run.market_state, run.policy_version, w.status
ORDER BY w.status

-- Question: How much collateral did stale oracle prices cost over the last weekend?
-- Parameters: none. "The last weekend" = the risk runs valued while XNYS was in its weekend state
--   (risk_runs.market_state = 'weekend', Saturday and Sunday New York time) within three days before the
--   latest such run.
-- Columns: run_id, block_number, block_timestamp, holdings, stale_holdings, stale_market_value, collateral_lost, collateral_value
-- collateral_lost: market value x (1 - haircut) of the holdings whose only code is ORACLE_STALE (bit 9, 512):
--   what they would have counted had the price been fresh (before the concentration caps). A holding that is
--   also ineligible for another reason counts in stale_market_value, not in collateral_lost.
WITH weekend_runs AS (
    SELECT r.id, r.block_number, r.block_timestamp
    FROM risk_runs r
    WHERE r.market_state = 'weekend' AND r.orphaned_at IS NULL
      AND r.block_timestamp > (SELECT MAX(w.block_timestamp) FROM risk_runs w
                               WHERE w.chain_id = r.chain_id AND w.market_state = 'weekend'
                                 AND w.orphaned_at IS NULL) - 3 * 86400
)
SELECT wr.id AS run_id, wr.block_number, wr.block_timestamp,
       COUNT(*) AS holdings,
       SUM(CASE WHEN (h.codes & 512) <> 0 THEN 1 ELSE 0 END) AS stale_holdings,
       SUM(CASE WHEN (h.codes & 512) <> 0 THEN h.market_value ELSE 0 END) AS stale_market_value,
       SUM(CASE WHEN h.codes = 512 THEN h.market_value * (1 - h.haircut) ELSE 0 END) AS collateral_lost,
       SUM(h.collateral_value) AS collateral_value
FROM weekend_runs wr
JOIN risk_holdings h ON h.run_id = wr.id
GROUP BY wr.id, wr.block_number, wr.block_timestamp
ORDER BY wr.block_timestamp, wr.id

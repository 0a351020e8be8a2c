-- Question: How much market value is refused as collateral in the latest run, and why?
-- Parameters: none
-- Columns: reason, holdings, wallets, market_value, share_of_market_value
-- reason is the comma-separated list of eligibility codes (docs/risk.md section 3); a holding with several codes
-- is counted once, under its combination.
SELECT c.reason,
       COUNT(*) AS holdings,
       COUNT(DISTINCT c.wallet) AS wallets,
       SUM(c.market_value) AS market_value,
       SUM(c.market_value) / NULLIF((SELECT SUM(a.market_value) FROM wallet_collateral a), 0) AS share_of_market_value
FROM wallet_collateral c
WHERE c.codes <> 0
GROUP BY c.reason
ORDER BY market_value DESC, c.reason

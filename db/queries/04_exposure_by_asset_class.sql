-- Question: How is the platform's exposure split by asset class in the latest risk run?
-- Parameters: none
-- Columns: chain_id, asset_class, tokens, holdings, market_value, collateral_value, advance_rate, share_of_market_value
SELECT e.chain_id, e.asset_class,
       COUNT(*) AS tokens,
       SUM(e.holders) AS holdings,
       SUM(e.market_value) AS market_value,
       SUM(e.collateral_value) AS collateral_value,
       SUM(e.collateral_value) / NULLIF(SUM(e.market_value), 0) AS advance_rate,
       SUM(e.market_value) / NULLIF((SELECT SUM(a.market_value) FROM token_exposure a
                                     WHERE a.chain_id = e.chain_id), 0) AS share_of_market_value
FROM token_exposure e
GROUP BY e.chain_id, e.asset_class
ORDER BY market_value DESC, e.asset_class

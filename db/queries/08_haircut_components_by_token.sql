-- Question: What makes up the haircut of each token in the latest run (market-value weighted, eligible holdings)?
-- Parameters: none
-- Columns: symbol, asset_class, holdings, market_value, h_base, h_vol, h_size, h_gap, haircut, min_haircut, max_haircut
SELECT symbol, asset_class,
       COUNT(*) AS holdings,
       SUM(market_value) AS market_value,
       SUM(h_base * market_value) / NULLIF(SUM(market_value), 0) AS h_base,
       SUM(h_vol * market_value) / NULLIF(SUM(market_value), 0) AS h_vol,
       SUM(h_size * market_value) / NULLIF(SUM(market_value), 0) AS h_size,
       SUM(h_gap * market_value) / NULLIF(SUM(market_value), 0) AS h_gap,
       SUM(haircut * market_value) / NULLIF(SUM(market_value), 0) AS haircut,
       MIN(haircut) AS min_haircut,
       MAX(haircut) AS max_haircut
FROM wallet_collateral
WHERE eligible
GROUP BY symbol, asset_class
ORDER BY market_value DESC, symbol

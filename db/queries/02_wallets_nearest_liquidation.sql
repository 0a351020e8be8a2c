-- Question: Which wallets are nearest to liquidation in the latest risk run (lowest equity / maintenance margin)?
-- Parameters: top_n (number of rows)
-- Columns: wallet, status, equity_to_mm, buffer_to_liquidation, equity, mm, im, collateral, upnl, cash, block_number, block_timestamp
-- A wallet is liquidated when equity < mm (equity_to_mm < 1); wallets without positions (mm = 0) are left out.
SELECT wallet, status, equity_to_mm, buffer_to_liquidation, equity, mm, im, collateral, upnl, cash,
       block_number, block_timestamp
FROM wallet_margin
WHERE mm > 0
ORDER BY equity_to_mm, wallet
LIMIT :top_n

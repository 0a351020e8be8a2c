-- Question: What does one wallet hold, what counts as collateral and why, and where does its margin stand?
-- Parameters: wallet (lowercase 0x address)
-- Columns: wallet, symbol, balance, price, market_value, reason, haircut, h_base, h_vol, h_size, h_gap, platform_cut, wallet_cut, collateral_value, status, equity, im, mm, block_number
SELECT c.wallet, c.symbol, c.balance, c.price, c.market_value, c.reason,
       c.haircut, c.h_base, c.h_vol, c.h_size, c.h_gap, c.platform_cut, c.wallet_cut, c.collateral_value,
       m.status, m.equity, m.im, m.mm, c.block_number
FROM wallet_collateral c
JOIN wallet_margin m ON m.run_id = c.run_id AND m.wallet = c.wallet
WHERE c.wallet = :wallet
ORDER BY c.market_value DESC, c.symbol

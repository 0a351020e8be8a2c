-- Question: Who are the largest holders of a token right now (synced head), and what share of all holdings do they have?
-- Parameters: symbol (token symbol, e.g. 'AAPLx'), top_n (number of rows)
-- Columns: wallet, symbol, balance_raw, balance, underlying_shares, share_of_holdings, block_number
WITH total AS (
    SELECT chain_id, token, SUM(balance) AS balance
    FROM holders
    WHERE symbol = :symbol
    GROUP BY chain_id, token
)
SELECT h.wallet, h.symbol, h.balance_raw, h.balance, h.underlying_shares,
       h.balance / NULLIF(total.balance, 0) AS share_of_holdings,
       h.block_number
FROM holders h
JOIN total ON total.chain_id = h.chain_id AND total.token = h.token
ORDER BY h.balance_raw DESC, h.wallet
LIMIT :top_n

-- Question: Which tokens are most concentrated, and how much of their supply is pledged as collateral?
-- Parameters: none
-- Columns: symbol, holders, top1_share, top10_share, pledged_share_of_supply, held_share_of_supply, total_supply, platform_cut, collateral_value, market_value
-- top1_share / top10_share: share of the token's holdings (= of its market value, one price per token) held by
-- the largest 1 / 10 wallets; pledged_share_of_supply: units in eligible holdings over total supply.
SELECT symbol, holders, top1_share, top10_share, pledged_share_of_supply, held_share_of_supply, total_supply,
       platform_cut, collateral_value, market_value
FROM token_exposure
ORDER BY top10_share DESC, symbol

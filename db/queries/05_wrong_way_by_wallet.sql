-- Question: Which wallets carry the largest wrong-way add-on (joint equity-crypto stress minus the independent one)?
-- Parameters: top_n (number of rows)
-- Columns: wallet, wrong_way, l_joint, l_indep, wrong_way_share, collateral, equity, stressed_excess, status, binding
-- wrong_way_share = wrong_way / l_joint: how much of the parametric stress loss comes from the correlation.
SELECT wallet, wrong_way, l_joint, l_indep,
       wrong_way / NULLIF(l_joint, 0) AS wrong_way_share,
       collateral, equity, stressed_excess, status, binding
FROM wallet_margin
WHERE wrong_way > 0
ORDER BY wrong_way DESC, wallet
LIMIT :top_n

-- Question: How fresh is every price feed at the synced head, and which are overdue while their market trades?
-- Parameters: none
-- Columns: feed_name, kind, calendar, price, round_id, quality, updated_at, age_s, heartbeat, market_state, stale, overdue_in_session
-- stale = age_s > heartbeat by the clock; overdue_in_session = stale while the feed's market is open (or 24/7).
-- The engine's calendar-aware verdict (with grace) is the ORACLE_STALE code in wallet_collateral.
SELECT feed_name, kind, calendar, price, round_id, quality, updated_at, age_s, heartbeat, market_state, stale,
       CASE WHEN stale AND market_state IN ('open', 'continuous') THEN 1 ELSE 0 END AS overdue_in_session
FROM price_latest
ORDER BY age_s DESC, feed_name

-- Question (as of a time): What was every feed's latest price at unix time ts?
-- Parameters: chain_id, ts (unix seconds)
-- Columns: feed_name, kind, round_id, price, quality, updated_at, age_s
-- The latest round per feed that carries a price (quality 'ok' or 'carried_over') with 0 < updated_at <= ts,
-- as the risk snapshot picks it: a later round of 0 or with no update time is never a price.
SELECT f.name AS feed_name, f.kind, p.round_id,
       CASE WHEN p.quality IN ('ok', 'carried_over')
            THEN CAST(p.answer_raw AS DOUBLE PRECISION) / CAST('1' || substr('000000000000000000000000000000000000000000000000000000000000000000000000000000', 1, f.decimals) AS DOUBLE PRECISION)
       END AS price,
       p.quality, p.updated_at, :ts - p.updated_at AS age_s
FROM feeds f
JOIN price_rounds p ON p.chain_id = f.chain_id AND p.feed = f.address
WHERE f.chain_id = :chain_id
  AND p.round_id = (SELECT MAX(q.round_id) FROM price_rounds q
                    WHERE q.chain_id = f.chain_id AND q.feed = f.address
                      AND q.quality IN ('ok', 'carried_over')
                      AND q.updated_at > 0 AND q.updated_at <= :ts)
ORDER BY f.name

-- Question (as of a time): What was every feed's latest price at unix time ts?
-- Parameters: chain_id, ts (unix seconds)
-- Columns: feed_name, kind, round_id, price, quality, updated_at, age_s
-- The latest round per feed is the highest round id with 0 < updated_at <= ts (as the risk snapshot picks it);
-- price is NULL unless the round's quality is 'ok'.
SELECT f.name AS feed_name, f.kind, p.round_id,
       CASE WHEN p.quality = 'ok'
            THEN CAST(p.answer_raw AS DOUBLE PRECISION) / CAST('1' || substr('000000000000000000000000000000000000000000000000000000000000000000000000000000', 1, f.decimals) AS DOUBLE PRECISION)
       END AS price,
       p.quality, p.updated_at, :ts - p.updated_at AS age_s
FROM feeds f
JOIN price_rounds p ON p.chain_id = f.chain_id AND p.feed = f.address
WHERE f.chain_id = :chain_id
  AND p.round_id = (SELECT MAX(q.round_id) FROM price_rounds q
                    WHERE q.chain_id = f.chain_id AND q.feed = f.address
                      AND q.updated_at > 0 AND q.updated_at <= :ts)
ORDER BY f.name

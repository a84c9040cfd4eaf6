-- memoria 0.6.0 -> 0.7.0, last part: the rollups whose measures merge take
-- the additive path from now on (their sources are locked meanwhile).
SELECT memoria_internal.settle_delta_log(id) FROM memoria.rollups ORDER BY id;

-- Message vectors in half precision (pgvector's halfvec, 2 bytes a dimension). At 100k
-- messages the float4 HNSW index (195 MB) and the vectors (195 MB) did not fit in the
-- server's cache beside each other: a filtered HNSW scan then read most of its pages from
-- the OS, 10-30 ms a search. In halves both are ~100 MB, and the scan takes 2-3 times less
-- (workspace scope 5.5 -> 2.4 ms, peer scope 32 -> 11 ms p50 at 100k, bench numbers in the
-- commit). A unit vector's cosine changes by ~1e-4 in half precision: no ranking moves
-- for it (LoCoMo recall unchanged). Every index insert of the embedding backlog also
-- writes half the bytes. The dimension is kept as configured.
DROP INDEX message_embeddings_hnsw;
DO $$
DECLARE dims integer := (SELECT atttypmod FROM pg_attribute
                         WHERE attrelid = 'message_embeddings'::regclass
                           AND attname = 'embedding');
BEGIN
    EXECUTE format('ALTER TABLE message_embeddings ALTER COLUMN embedding TYPE halfvec(%s) '
                   'USING embedding::halfvec(%s)', dims, dims);
END $$;
CREATE INDEX message_embeddings_hnsw ON message_embeddings
    USING hnsw (embedding halfvec_cosine_ops);

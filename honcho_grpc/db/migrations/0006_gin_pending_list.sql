-- New messages go to the full-text GIN index's pending list, which every search reads in
-- full until it is merged (by autovacuum, or by an insert once the list passes
-- gin_pending_list_limit, 4 MB by default). Measured at 10k imported messages: a one-word
-- text lookup read 230 pending pages, 3.9 ms, and the planner, seeing that cost, chose a
-- sequential scan; once merged the same lookup took 0.07 ms. A 256 kB limit keeps the list
-- short (inserts merge it in small steps) and search cost bounded.
ALTER INDEX messages_search SET (gin_pending_list_limit = 256);

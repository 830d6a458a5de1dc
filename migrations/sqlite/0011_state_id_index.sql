-- smsctx schema, version 11: the state with the primary id after it.
--
-- A RetrieveMultiple without $orderby is ordered by the primary id (the tie-breaker of every
-- order and the keyset of its paging). Under a state filter alone (`$filter=statecode eq 1`,
-- the active and inactive lists, `$count=true&$top=1` beside them), version 5's state index,
-- (statecode, createdon), finds the rows but not in that order: the database fetched and
-- sorted every row of the state to return one (48 ms at 100,000 rows in BENCHMARKS.md). This
-- index reads them in key order and stops at the page; a next page seeks inside its range.
-- (Numbered 11: another branch holds 10.)

CREATE INDEX msdyn_smsengagementctx_state_id ON msdyn_smsengagementctx
    (statecode, msdyn_smsengagementctxid);

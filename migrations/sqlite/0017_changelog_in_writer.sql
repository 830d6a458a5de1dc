-- smsctx schema, version 17: the writer logs the changes of a row itself (issue 15: a logged
-- write costs at most 15 % more than an unlogged one).
--
-- The three triggers on `msdyn_smsengagementctx` built each log row inside SQLite, the audit
-- JSON by `json_object` over every column (about a quarter of a logged create's extra
-- instructions). Every create, update and delete of a row goes through one function of the
-- writer thread (`apply`, src/store/sqlite.rs), which now writes the same log row in the same
-- savepoint from the values it holds (src/store/sqlite_changelog.rs), for every table that
-- `smsctx_changelog_settings` lists as logged. The settings, the log table, its index, the
-- share triggers and the `audit` view stay as migration 16 left them.

DROP TRIGGER smsctx_changelog_ctx_i;
DROP TRIGGER smsctx_changelog_ctx_u;
DROP TRIGGER smsctx_changelog_ctx_d;

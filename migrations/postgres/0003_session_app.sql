-- A session remembers the app that opened it (twin of
-- migrations/sqlite/0003): its tokens are used only by requests signed by
-- that same app.
delete from token;
delete from session;
alter table session add column app_id text not null default '';
alter table session add column app_kind text not null default ''
    check (app_kind in ('app', 'device', 'service'));
-- The session cap evicts an account's least recently renewed sessions.
create index session_account_expiry on session (account_id, expires_at);

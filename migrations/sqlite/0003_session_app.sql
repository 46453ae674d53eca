-- A session remembers the app that opened it (its app_id and that app's
-- kind): its tokens are used only by requests signed by that same app, so a
-- device's token acts only under the device's own key.
--
-- Sessions opened before this migration do not say which app opened them:
-- they end here (their tokens go with them); clients log in again.
delete from token;
delete from session;
alter table session add column app_id text not null default '';
alter table session add column app_kind text not null default ''
    check (app_kind in ('app', 'device', 'service'));
-- The session cap evicts an account's least recently renewed sessions.
create index session_account_expiry on session (account_id, expires_at);

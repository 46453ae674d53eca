-- jidgate's schema. The database is the source of truth; the XMPP server is
-- made to match it. Rows that are mid-way through an XMPP change carry a
-- state other than their final one, so a crash leaves something the
-- reconciler can finish or undo. Times are unix seconds.

-- One row per user: phone (type 1), device (2) or WeChat user (3).
-- state: 'creating' (JID being created), 'active', 'deleting' (JID being
-- deleted, rosters being cleaned).
create table account (
    id              integer primary key,
    user_name       text not null unique,
    type            integer not null check (type in (1, 2, 3)),
    device_type     text,
    des             text not null default '',
    password_hash   text not null,
    jid_local       text not null unique,
    jid_pwd_enc     blob not null,
    -- A new JID password being pushed to the XMPP server (password change);
    -- the reconciler pushes it again if jidgate stopped half-way.
    jid_pwd_next    blob,
    state           text not null check (state in ('creating', 'active', 'deleting')),
    created_at      integer not null,
    updated_at      integer not null
);
create index account_state on account (state) where state <> 'active';

-- A login. Its tokens go with it; revoking a session revokes its tokens.
create table session (
    id              integer primary key,
    account_id      integer not null references account (id) on delete cascade,
    created_at      integer not null,
    expires_at      integer not null
);
create index session_account on session (account_id);

-- Access and refresh tokens, stored only as SHA-256 of the token.
-- used: refresh tokens are single use; presenting a used one revokes the
-- whole session (token theft detection).
create table token (
    hash            blob primary key,
    session_id      integer not null references session (id) on delete cascade,
    kind            text not null check (kind in ('access', 'refresh')),
    expires_at      integer not null,
    used            integer not null default 0
);
create index token_session on token (session_id);
create index token_expiry on token (expires_at);

-- Image captchas: answer (lowercase), single use.
create table captcha (
    id              text primary key,
    answer          text not null,
    expires_at      integer not null
);

-- Nonces of signed requests, kept until their ts leaves the window.
create table nonce (
    scope           text not null,
    nonce           text not null,
    expires_at      integer not null,
    primary key (scope, nonce)
);
create index nonce_expiry on nonce (expires_at);

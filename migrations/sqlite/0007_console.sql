-- The operator console (issue 10). Operators are not API users: they log in
-- to /console only. Passwords are Argon2id PHC strings.
create table operator (
    id              integer primary key,
    name            text not null unique,
    password_hash   text not null,
    -- Failed logins since the last success: past console.captcha_after
    -- the login page asks for a captcha.
    failed_logins   integer not null default 0,
    created_at      integer not null
);

-- A console login: the cookie holds a random token, stored only as its
-- SHA-256; every form carries the session's CSRF token. A session idle for
-- console.idle_timeout seconds is over.
create table operator_session (
    token_hash      blob primary key,
    operator_id     integer not null references operator (id) on delete cascade,
    csrf            text not null,
    created_at      integer not null,
    last_seen       integer not null
);
create index operator_session_operator on operator_session (operator_id);

-- Every operator action, as the console shows it.
create table audit (
    id              integer primary key,
    at              integer not null,
    operator        text not null,
    action          text not null,
    target          text not null,
    detail          text not null default ''
);
create index audit_at on audit (at);

-- Accounts an operator disabled: their logins are refused and their JID
-- password was rotated (the JID cannot log in with what its user has).
create table account_disabled (
    account_id      integer primary key references account (id) on delete cascade,
    disabled_at     integer not null,
    operator        text not null
);

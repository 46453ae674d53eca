-- A phone or WeChat user (owner) bound to a device, as a mutual presence
-- subscription on the XMPP server.
-- state: 'binding' (handshake in progress or failed: the reconciler undoes
-- it), 'bound', 'unbinding' (roster entries being removed: the reconciler
-- finishes it).
create table binding (
    id              integer primary key,
    owner_id        integer not null references account (id),
    device_id       integer not null references account (id),
    state           text not null check (state in ('binding', 'bound', 'unbinding')),
    created_at      integer not null,
    updated_at      integer not null,
    unique (owner_id, device_id)
);
create index binding_device on binding (device_id);
create index binding_state on binding (state) where state <> 'bound';

-- The current one-time bind code of a device (SHA-256 of the code). Wrong
-- guesses are counted; too many and the code is void.
create table bind_code (
    device_id       integer primary key references account (id) on delete cascade,
    code_hash       blob not null,
    expires_at      integer not null,
    attempts        integer not null default 0
);

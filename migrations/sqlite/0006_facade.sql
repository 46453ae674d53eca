-- The WebSocket facade (docs/facade.md): friend events for event.read, and
-- unread message counts per contact for session.start. Everything else the
-- facade shows lives on the XMPP server (rosters, messages, vCards).

create table facade_event (
    id integer primary key autoincrement,
    account_id integer not null references account (id) on delete cascade,
    -- add_friend, accept_friend, reject_friend
    type text not null,
    -- the other user: a user_name, or a bare JID without a jidgate account
    peer text not null,
    note text not null default '',
    create_time integer not null
);
create index facade_event_account on facade_event (account_id, id);

create table facade_unread (
    account_id integer not null references account (id) on delete cascade,
    peer text not null,
    count integer not null,
    primary key (account_id, peer)
);

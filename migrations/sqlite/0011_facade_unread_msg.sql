-- Unread counts idempotent per message (docs/facade.md): each counted
-- message's id, so a message the XMPP server delivers again (offline
-- storage after a lost acknowledgement, a replay) is not counted twice.
-- Cleared with the count by message.mark_read.

create table facade_unread_msg (
    account_id integer not null references account (id) on delete cascade,
    msgid text not null,
    peer text not null,
    primary key (account_id, msgid)
);
create index facade_unread_msg_peer on facade_unread_msg (account_id, peer);

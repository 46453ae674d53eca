-- Unread counts idempotent per message (twin of
-- migrations/sqlite/0011_facade_unread_msg.sql): each counted message's
-- id, so a message delivered again is not counted twice.

create table facade_unread_msg (
    account_id  bigint not null references account (id) on delete cascade,
    msgid       text not null,
    peer        text not null,
    primary key (account_id, msgid)
);
create index facade_unread_msg_peer on facade_unread_msg (account_id, peer);

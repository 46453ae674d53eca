-- Where the facade's catch-up from the archive starts (docs/facade.md,
-- "Catching up from the archive"): per account, the XMPP server's archive
-- id (XEP-0313 / XEP-0359 stanza-id) of the newest message the phone has
-- acknowledged. No row: the catch-up starts at the archive's oldest
-- message.

create table facade_cursor (
    account_id integer primary key references account (id) on delete cascade,
    archive_id text not null,
    updated_at integer not null
);

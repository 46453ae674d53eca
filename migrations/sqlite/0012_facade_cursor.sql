-- The facade's catch-up from the archive (docs/facade.md, "Catching up
-- from the archive"), per account: `archive_id`, the XMPP server's archive
-- id (XEP-0313 / XEP-0359 stanza-id) of the newest message the phone has
-- acknowledged (null: none yet, catch up from the oldest); `clean` = 1
-- when the account's last facade session ended with every archived push
-- acknowledged (the next login then needs no catch-up); `owner`, the
-- session that set `clean` = 0 at its start (only it may set it back).

create table facade_cursor (
    account_id integer primary key references account (id) on delete cascade,
    archive_id text,
    clean integer not null default 0,
    owner text not null,
    updated_at integer not null
);

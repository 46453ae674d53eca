-- The facade's catch-up from the archive (twin of
-- migrations/sqlite/0012_facade_cursor.sql): the archive id of the newest
-- message the phone acknowledged (null: none yet); whether the last
-- session ended with every archived push acknowledged; which session
-- started last.

create table facade_cursor (
    account_id  bigint primary key references account (id) on delete cascade,
    archive_id  text,
    clean       bigint not null default 0,
    owner       text not null,
    updated_at  bigint not null
);

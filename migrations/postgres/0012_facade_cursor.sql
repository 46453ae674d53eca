-- Where the facade's catch-up from the archive starts (twin of
-- migrations/sqlite/0012_facade_cursor.sql): the archive id of the newest
-- message the phone has acknowledged; no row: the archive's oldest.

create table facade_cursor (
    account_id  bigint primary key references account (id) on delete cascade,
    archive_id  text not null,
    updated_at  bigint not null
);

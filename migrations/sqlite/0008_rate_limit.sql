-- Rate limits shared by every instance on one database (PostgreSQL; with
-- SQLite the table exists and is used the same way): one row per limited
-- key, GCRA. full_at: when the key's budget is whole again, in unix
-- milliseconds; a request takes one unit by moving it forward, and is
-- refused if that would put it more than the budget ahead of now. Rows
-- whose budget is whole are pruned.
create table rate_limit (
    key             text primary key,
    full_at         integer not null
);
create index rate_limit_full_at on rate_limit (full_at);

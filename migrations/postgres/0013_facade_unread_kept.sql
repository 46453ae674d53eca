-- The ids of counted messages outlive message.mark_read (twin of
-- migrations/sqlite/0013_facade_unread_kept.sql).

alter table facade_unread_msg add column counted_at bigint not null default 0;

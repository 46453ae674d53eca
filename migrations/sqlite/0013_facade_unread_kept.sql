-- The ids of counted messages outlive message.mark_read (docs/facade.md):
-- a message the XMPP server delivers again after the user read it is not
-- counted again. Kept for db::facade::UNREAD_IDS_KEPT seconds after they
-- were counted, pruned by the next mark_read of the same contact.

alter table facade_unread_msg add column counted_at integer not null default 0;

-- Failed reconciler attempts, per row and operation, so that no row is
-- retried forever in silence: past `reconcile.alert_after` failures each
-- further failure is an error in the log, and the row is listed in
-- /readyz. A success removes the entry; so does the row leaving its
-- pending state (finished or undone by someone else).
--
-- A table of its own rather than columns on `account` and `binding`: the
-- reconciler alone writes it, and drift repairs (a `bound` binding whose
-- rosters disagree, a roster entry with no row at all) are counted too.
create table repair_attempt (
    -- The row: 'account #12', 'binding #5', or 'pair #3/#7' (an owner and a
    -- device with roster entries but no binding row).
    target          text not null,
    -- undo_create, finish_delete, push_jid_password, undo_binding,
    -- finish_unbinding, rebind, remove_stray.
    operation       text not null,
    attempts        integer not null,
    first_failed_at integer not null,
    last_failed_at  integer not null,
    -- The register API error code of the last failure (e.g. 105, 112).
    last_code       integer not null,
    last_error      text not null,
    primary key (target, operation)
);

-- Failed reconciler attempts, per row and operation (twin of
-- migrations/sqlite/0005): past `reconcile.alert_after` failures each
-- further failure is an error in the log, and the row is listed in /readyz.
create table repair_attempt (
    -- 'account #12', 'binding #5', or 'pair #3/#7'.
    target          text not null,
    -- undo_create, finish_delete, push_jid_password, undo_binding,
    -- finish_unbinding, rebind, remove_stray.
    operation       text not null,
    attempts        bigint not null,
    first_failed_at bigint not null,
    last_failed_at  bigint not null,
    -- The register API error code of the last failure (e.g. 105, 112).
    last_code       bigint not null,
    last_error      text not null,
    primary key (target, operation)
);

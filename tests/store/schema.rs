//! The two migration folders describe one schema: every table with the
//! same columns in the same order (type class, nullability, default), the
//! same primary keys, unique constraints, checks (column and allowed
//! values), foreign keys (with their `on delete`) and indexes (columns,
//! unique, partial).

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use crate::backends::{Backend, TestDb};

#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    /// (name, type class, not null, default)
    columns: Vec<(String, &'static str, bool, Option<String>)>,
    primary_key: Vec<String>,
    uniques: BTreeSet<Vec<String>>,
    /// (column, the literals it may take)
    checks: BTreeSet<(String, BTreeSet<String>)>,
    /// (column, table, column, on delete)
    foreign_keys: BTreeSet<(String, String, String, String)>,
    /// (name, columns, unique, partial)
    indexes: BTreeSet<(String, Vec<String>, bool, bool)>,
}

type Schema = BTreeMap<String, Table>;

/// A constraint: kind, columns (in key order), definition, and for a
/// foreign key the referenced table and column and its `on delete`.
type Constraint = (
    String,
    Vec<String>,
    String,
    Option<String>,
    Option<String>,
    String,
);

#[tokio::test]
async fn the_sqlite_and_postgres_migrations_make_the_same_schema() {
    let sqlite = sqlite_schema(&TestDb::new(Backend::Sqlite).await.url).await;
    let postgres = postgres_schema(&TestDb::new(Backend::Postgres).await.url).await;
    assert_eq!(
        sqlite.keys().collect::<Vec<_>>(),
        postgres.keys().collect::<Vec<_>>(),
        "tables"
    );
    for (name, table) in &sqlite {
        assert_eq!(
            table, &postgres[name],
            "table {name}: sqlite (left), postgres (right)"
        );
    }
    assert!(sqlite.len() >= 8, "{:?}", sqlite.keys());
}

fn class(sql_type: &str) -> &'static str {
    match sql_type.to_ascii_lowercase().as_str() {
        "integer" | "bigint" | "int4" | "int8" | "smallint" => "integer",
        "text" => "text",
        "blob" | "bytea" => "bytes",
        other => panic!("a column type with no class: {other}"),
    }
}

/// The literals of a check expression: quoted strings and numbers.
fn literals(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(c) = rest.chars().next() {
        if c == '\'' {
            let end = rest[1..].find('\'').unwrap() + 1;
            out.insert(rest[1..end].to_owned());
            rest = &rest[end + 1..];
        } else if c.is_ascii_digit() && !rest.is_empty() {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            out.insert(rest[..end].to_owned());
            rest = &rest[end..];
        } else if c.is_alphanumeric() || c == '_' {
            // Skip a whole word (so digits inside names are not literals).
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            rest = &rest[end..];
        } else {
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// `''`, `0`, `''::text` → the default's literal.
fn default_of(d: Option<String>) -> Option<String> {
    d.map(|d| d.split("::").next().unwrap().to_owned())
}

async fn sqlite_schema(url: &str) -> Schema {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let mut schema = Schema::new();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "select name, sql from sqlite_master where type = 'table' \
         and name not like 'sqlite_%' and name not like '_sqlx%' order by name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (name, sql) in tables {
        let mut t = Table::default();
        let mut pk = vec![];
        for row in sqlx::query("select * from pragma_table_info($1)")
            .bind(&name)
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            let (col, ty): (String, String) = (row.get("name"), row.get("type"));
            let key: i64 = row.get("pk");
            let not_null = row.get::<i64, _>("notnull") == 1 || key > 0;
            t.columns.push((
                col.clone(),
                class(&ty),
                not_null,
                default_of(row.get("dflt_value")),
            ));
            if key > 0 {
                pk.push((key, col));
            }
        }
        pk.sort();
        t.primary_key = pk.into_iter().map(|(_, c)| c).collect();
        let lower = sql.to_ascii_lowercase();
        for (at, _) in lower.match_indices("check (") {
            let body = &lower[at + "check (".len()..];
            let mut depth = 1;
            let end = body
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .unwrap()
                .0;
            let expr = &body[..end];
            let column = expr.split_whitespace().next().unwrap().to_owned();
            t.checks.insert((column, literals(expr)));
        }
        for fk in sqlx::query("select * from pragma_foreign_key_list($1)")
            .bind(&name)
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            t.foreign_keys.insert((
                fk.get("from"),
                fk.get("table"),
                fk.get("to"),
                fk.get::<String, _>("on_delete").to_ascii_lowercase(),
            ));
        }
        for ix in sqlx::query("select * from pragma_index_list($1)")
            .bind(&name)
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            let (ix_name, origin): (String, String) = (ix.get("name"), ix.get("origin"));
            let cols: Vec<String> = sqlx::query("select * from pragma_index_info($1)")
                .bind(&ix_name)
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|c| c.get("name"))
                .collect();
            match origin.as_str() {
                "u" => {
                    t.uniques.insert(cols);
                }
                "c" => {
                    let unique = ix.get::<i64, _>("unique") == 1;
                    let partial = ix.get::<i64, _>("partial") == 1;
                    t.indexes.insert((ix_name, cols, unique, partial));
                }
                _ => {} // the primary key, already read
            }
        }
        schema.insert(name, t);
    }
    pool.close().await;
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let mut schema = Schema::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = 'public' \
         and table_name not like '_sqlx%' order by table_name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for name in tables {
        let mut t = Table::default();
        let columns: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "select column_name::text, data_type::text, is_nullable::text, column_default::text \
             from information_schema.columns where table_schema = 'public' and table_name = $1 \
             order by ordinal_position",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await
        .unwrap();
        for (col, ty, nullable, default) in columns {
            t.columns
                .push((col, class(&ty), nullable == "NO", default_of(default)));
        }
        let constraints: Vec<Constraint> =
            sqlx::query_as(
                "select c.contype::text, \
                 array(select a.attname::text from unnest(c.conkey) with ordinality k(n, i) \
                       join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.n order by k.i), \
                 pg_get_constraintdef(c.oid), f.relname::text, \
                 (select a.attname::text from pg_attribute a \
                  where a.attrelid = c.confrelid and a.attnum = c.confkey[1]), \
                 c.confdeltype::text \
                 from pg_constraint c join pg_class r on r.oid = c.conrelid \
                 left join pg_class f on f.oid = c.confrelid \
                 where r.relname = $1",
            )
            .bind(&name)
            .fetch_all(&pool)
            .await
            .unwrap();
        for (kind, cols, def, ref_table, ref_col, on_delete) in constraints {
            match kind.as_str() {
                "p" => t.primary_key = cols,
                "u" => {
                    t.uniques.insert(cols);
                }
                "c" => {
                    t.checks.insert((cols[0].clone(), literals(&def)));
                }
                "f" => {
                    let on_delete = match on_delete.as_str() {
                        "c" => "cascade",
                        "a" => "no action",
                        "r" => "restrict",
                        "n" => "set null",
                        other => panic!("on delete {other}"),
                    };
                    t.foreign_keys.insert((
                        cols[0].clone(),
                        ref_table.unwrap(),
                        ref_col.unwrap(),
                        on_delete.into(),
                    ));
                }
                other => panic!("constraint kind {other}"),
            }
        }
        let indexes: Vec<(String, Vec<String>, bool, bool)> = sqlx::query_as(
            "select i.relname::text, \
             array(select a.attname::text from unnest(x.indkey) with ordinality k(n, o) \
                   join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.n order by k.o), \
             x.indisunique, x.indpred is not null \
             from pg_index x join pg_class i on i.oid = x.indexrelid \
             join pg_class r on r.oid = x.indrelid \
             where r.relname = $1 and not exists \
             (select 1 from pg_constraint c where c.conindid = x.indexrelid)",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await
        .unwrap();
        t.indexes.extend(indexes);
        schema.insert(name, t);
    }
    pool.close().await;
    schema
}

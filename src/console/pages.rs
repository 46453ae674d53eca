//! The console's pages: account search, one account (sessions with revoke,
//! bindings with the live roster), pending rows, the reconciler (dry run
//! and real run), the audit table.

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{Operator, Page, age, audit, render, time};
use crate::app::App;
use crate::binding::view;
use crate::db::{self, UserType, console as rows};
use crate::params::Params;
use crate::reconcile::{self, Action};

/// Most accounts a search lists; most audit entries shown.
const SEARCH_LIMIT: i64 = 100;
const AUDIT_LIMIT: i64 = 200;

fn type_name(t: UserType) -> &'static str {
    match t {
        UserType::Phone => "phone",
        UserType::Device => "device",
        UserType::Wechat => "WeChat",
    }
}

/// One account as a table row.
pub struct AccountLine {
    pub id: i64,
    pub user_name: String,
    pub type_name: &'static str,
    pub jid: String,
    pub state: String,
    pub created: String,
}

fn line(app: &App, a: &rows::AccountRow) -> AccountLine {
    AccountLine {
        id: a.id,
        user_name: a.user_name.clone(),
        type_name: type_name(a.type_),
        jid: format!("{}@{}", a.jid_local, app.domain()),
        state: format!("{:?}", a.state).to_lowercase(),
        created: time(a.created_at),
    }
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    r#type: String,
}

#[derive(askama::Template)]
#[template(path = "console/accounts.html")]
struct SearchPage<'a> {
    op: &'a Operator,
    q: &'a str,
    type_: &'a str,
    accounts: Vec<AccountLine>,
}

/// `GET /console/accounts?q=&type=`.
pub async fn search(
    State(app): State<App>,
    op: Operator,
    Query(query): Query<SearchQuery>,
) -> Result<Html<String>, Page> {
    let type_ = UserType::parse(&query.r#type).ok();
    let found = rows::search(&app.db, query.q.trim(), type_, SEARCH_LIMIT).await?;
    render(&SearchPage {
        op: &op,
        q: &query.q,
        type_: &query.r#type,
        accounts: found.iter().map(|a| line(&app, a)).collect(),
    })
}

pub struct SessionLine {
    pub id: i64,
    pub app: String,
    pub created: String,
    pub expires: String,
}

pub struct BindingLine {
    pub other: String,
    pub other_id: i64,
    pub role: &'static str,
    pub state: &'static str,
    pub since: String,
}

#[derive(askama::Template)]
#[template(path = "console/account.html")]
struct AccountPage<'a> {
    op: &'a Operator,
    account: AccountLine,
    des: String,
    device_type: String,
    sessions: Vec<SessionLine>,
    bindings: Vec<BindingLine>,
    roster: Vec<view::RosterItem>,
    drift: Vec<view::Drift>,
    roster_error: String,
    /// `since … by …` when an operator disabled the account.
    disabled: String,
}

/// `GET /console/accounts/{id}`.
pub async fn account(
    State(app): State<App>,
    op: Operator,
    Path(id): Path<i64>,
) -> Result<Html<String>, Page> {
    let Some(row) = rows::account(&app.db, id).await? else {
        return Err(Page::NotFound);
    };
    let now = crate::clock::now();
    let sessions = rows::sessions(&app.db, id, now)
        .await?
        .into_iter()
        .map(|s| SessionLine {
            id: s.id,
            app: format!("{} ({})", s.app_id, s.app_kind),
            created: time(s.created_at),
            expires: time(s.expires_at),
        })
        .collect();
    let mut bindings = Vec::new();
    for b in db::binding::of_account(&app.db, id).await? {
        let (other_id, role) = if b.owner_id == id {
            (b.device_id, "device")
        } else {
            (b.owner_id, "owner")
        };
        let other = rows::account(&app.db, other_id)
            .await?
            .map_or_else(|| format!("#{other_id}"), |a| a.user_name);
        bindings.push(BindingLine {
            other,
            other_id,
            role,
            state: b.state.as_str(),
            since: time(b.updated_at),
        });
    }
    // The live roster: read from the XMPP server as the account itself.
    let (mut roster, mut drift, mut roster_error) = (Vec::new(), Vec::new(), String::new());
    match db::account::active_by_id(&app.db, id).await? {
        Some(a) => match view::of(&app, &a).await {
            Ok(v) => {
                roster = v.roster_item;
                drift = v.drift_ls;
            }
            Err(e) => {
                roster_error = format!("the roster could not be read: {}", e.public_message())
            }
        },
        None => roster_error = "not active: no roster to read".into(),
    }
    let disabled = rows::disabled(&app.db, id)
        .await?
        .map(|(at, by)| format!("since {} by {by}", time(at)))
        .unwrap_or_default();
    render(&AccountPage {
        op: &op,
        disabled,
        account: line(&app, &row),
        des: row.des.clone(),
        device_type: row.device_type.clone().unwrap_or_default(),
        sessions,
        bindings,
        roster,
        drift,
        roster_error,
    })
}

/// `POST /console/accounts/{id}/sessions/{session}/revoke`: ends a session
/// (its tokens fail verification from then on).
pub async fn revoke_session(
    State(app): State<App>,
    op: Operator,
    Path((id, session)): Path<(i64, i64)>,
    params: Params,
) -> Result<Response, Page> {
    op.check_csrf(&params)?;
    let now = crate::clock::now();
    if !rows::sessions(&app.db, id, now)
        .await?
        .iter()
        .any(|s| s.id == session)
    {
        return Err(Page::NotFound);
    }
    app.tokens.end_session(session).await?;
    audit(
        &app,
        &op.name,
        "revoke_session",
        &format!("account #{id}"),
        &format!("session #{session}"),
    )
    .await?;
    Ok(Redirect::to(&format!("/console/accounts/{id}")).into_response())
}

/// One repair as a table row.
pub struct ActionLine {
    pub operation: &'static str,
    pub target: String,
    pub text: String,
    pub age: String,
}

fn action_line(a: &Action, now: i64) -> ActionLine {
    let since = match a {
        Action::UndoCreate(x) | Action::FinishDelete(x) | Action::PushJidPassword(x) => {
            Some(x.updated_at)
        }
        Action::UndoBinding(b) | Action::FinishUnbinding(b) => Some(b.updated_at),
        Action::Rebind { binding, .. } => Some(binding.updated_at),
        Action::RemoveStray { .. } => None,
    };
    ActionLine {
        operation: a.operation(),
        target: a.target(),
        text: a.to_string(),
        age: since.map_or_else(|| "-".into(), |t| age(now - t)),
    }
}

#[derive(askama::Template)]
#[template(path = "console/pending.html")]
struct PendingPage<'a> {
    op: &'a Operator,
    grace: u64,
    actions: Vec<ActionLine>,
}

/// `GET /console/pending`: every row left mid-way, whatever its age.
pub async fn pending(State(app): State<App>, op: Operator) -> Result<Html<String>, Page> {
    let now = crate::clock::now();
    let actions = reconcile::pending(&app, 0).await?;
    render(&PendingPage {
        op: &op,
        grace: app.config.reconcile.grace,
        actions: actions.iter().map(|a| action_line(a, now)).collect(),
    })
}

#[derive(askama::Template)]
#[template(path = "console/reconcile.html")]
struct ReconcilePage<'a> {
    op: &'a Operator,
    pending: Vec<(&'static str, i64)>,
    stuck: Vec<db::repair_attempt::Stuck>,
    /// The background loop's last sweeps.
    last_pending: String,
    last_drift: String,
    /// After a run: what it was, and its actions.
    ran: String,
    actions: Vec<ActionLine>,
}

async fn reconcile_page(
    app: &App,
    op: &Operator,
    ran: String,
    actions: Vec<ActionLine>,
) -> Result<Html<String>, Page> {
    let threshold = i64::from(app.config.reconcile.alert_after);
    let (_, stuck) = db::repair_attempt::stuck(&app.db, threshold, 50).await?;
    let last = reconcile::last_sweeps();
    let said = |sweep: Option<(i64, Result<reconcile::Report, String>)>| match sweep {
        None => "not run yet by this instance".to_owned(),
        Some((at, Ok(r))) => format!("{}: {} done, {} failed", time(at), r.done, r.failed),
        Some((at, Err(e))) => format!("{}: stopped: {e}", time(at)),
    };
    render(&ReconcilePage {
        op,
        last_pending: said(last.pending),
        last_drift: said(last.drift),
        pending: db::stats::pending_rows(&app.db).await?,
        stuck,
        ran,
        actions,
    })
}

/// `GET /console/reconcile`.
pub async fn reconcile(State(app): State<App>, op: Operator) -> Result<Html<String>, Page> {
    reconcile_page(&app, &op, String::new(), Vec::new()).await
}

/// `POST /console/reconcile` with `mode` `dry` (list what would change) or
/// `run` (change it): the pending sweep with the configured grace, and the
/// drift sweep.
pub async fn run_reconcile(
    State(app): State<App>,
    op: Operator,
    params: Params,
) -> Result<Html<String>, Page> {
    op.check_csrf(&params)?;
    let dry = params.get("mode") != Some("run");
    let now = crate::clock::now();
    let mut actions = reconcile::pending(&app, app.config.reconcile.grace).await?;
    actions.extend(reconcile::drift(&app).await?);
    let lines: Vec<ActionLine> = actions.iter().map(|a| action_line(a, now)).collect();
    let ran = if dry {
        format!("Dry run: {} change(s) would be made.", lines.len())
    } else {
        let report = reconcile::apply_all(&app, &actions).await;
        format!("Run: {} done, {} failed.", report.done, report.failed)
    };
    let action = if dry {
        "reconcile_dry_run"
    } else {
        "reconcile_run"
    };
    audit(&app, &op.name, action, "reconciler", &ran).await?;
    reconcile_page(&app, &op, ran, lines).await
}

pub struct AuditLine {
    pub at: String,
    pub entry: db::audit::Entry,
}

#[derive(askama::Template)]
#[template(path = "console/audit.html")]
struct AuditPage<'a> {
    op: &'a Operator,
    entries: Vec<AuditLine>,
}

/// `GET /console/audit`.
pub async fn audit_page(State(app): State<App>, op: Operator) -> Result<Html<String>, Page> {
    let entries = db::audit::recent(&app.db, AUDIT_LIMIT)
        .await?
        .into_iter()
        .map(|entry| AuditLine {
            at: time(entry.at),
            entry,
        })
        .collect();
    render(&AuditPage { op: &op, entries })
}

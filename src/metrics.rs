//! Prometheus metrics: one process-wide registry and the few functions the
//! central points call to count (the request span, the XEP-0133 command
//! runner, the token service's connections and verification answers, the
//! reconciler's repairs). A ground module: it imports nothing of the crate,
//! so any layer may count; `server::metrics` serves [`render`] on its own
//! listener and sets the gauges read at scrape time.
//!
//! The metric names and labels are listed in `docs/operations.md`.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The endpoint label of a request that matched no route (or timed out
/// before it was routed): the path is never a label.
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    status: u16,
    /// The answer's `result` code, or `none` for an answer without one.
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabel {
    command: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    operation: &'static str,
    outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets: 1 ms to about 33 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// How a token verification was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The token is valid.
    Valid,
    /// Unknown, revoked, expired or not the caller's: `validate: false`.
    Refused,
    /// The answer was an error (busy, database failure).
    Error,
}

struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms<EndpointLabel>,
    rate_limited: Family<EndpointLabel, Counter>,
    xmpp_commands: Family<CommandLabels, Counter>,
    xmpp_command_seconds: Histograms<CommandLabel>,
    admin_session_up: Gauge,
    pending_rows: Family<KindLabel, Gauge>,
    reconcile_actions: Family<ActionLabels, Counter>,
    token_connections: Counter,
    token_connections_open: Gauge,
    /// Per [`Verification`], fetched once: the fast path does not hash labels.
    verifications: [Counter; 3],
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("jidgate");
        let requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests by endpoint (route pattern), status and answer result code",
            requests.clone(),
        );
        let request_seconds: Histograms<EndpointLabel> = Family::new_with_constructor(latency);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by endpoint",
            request_seconds.clone(),
        );
        let rate_limited = Family::default();
        registry.register(
            "rate_limit_refusals",
            "Requests refused by a rate limit or budget (result 9), by endpoint",
            rate_limited.clone(),
        );
        let xmpp_commands = Family::default();
        registry.register(
            "xmpp_commands",
            "XEP-0133 commands run on the XMPP server, by command and outcome (ok, error)",
            xmpp_commands.clone(),
        );
        let xmpp_command_seconds: Histograms<CommandLabel> = Family::new_with_constructor(latency);
        registry.register(
            "xmpp_command_duration_seconds",
            "XEP-0133 command latency by command",
            xmpp_command_seconds.clone(),
        );
        let admin_session_up = Gauge::default();
        registry.register(
            "xmpp_admin_session_up",
            "1 when the XMPP admin session is connected, else 0 (read at scrape time)",
            admin_session_up.clone(),
        );
        let pending_rows = Family::default();
        registry.register(
            "pending_rows",
            "Rows left mid-way, by kind (read at scrape time)",
            pending_rows.clone(),
        );
        let reconcile_actions = Family::default();
        registry.register(
            "reconcile_actions",
            "Repairs the reconciler carried out, by operation and outcome (ok, error)",
            reconcile_actions.clone(),
        );
        let token_connections = Counter::default();
        registry.register(
            "token_service_connections",
            "Token service connections accepted",
            token_connections.clone(),
        );
        let token_connections_open = Gauge::default();
        registry.register(
            "token_service_connections_open",
            "Token service connections open now",
            token_connections_open.clone(),
        );
        let verification_family: Family<ResultLabel, Counter> = Family::default();
        registry.register(
            "token_verifications",
            "Token service verifications answered, by result (valid, refused, error)",
            verification_family.clone(),
        );
        let verifications = ["valid", "refused", "error"].map(|result| {
            verification_family
                .get_or_create(&ResultLabel { result })
                .clone()
        });
        Metrics {
            registry,
            requests,
            request_seconds,
            rate_limited,
            xmpp_commands,
            xmpp_command_seconds,
            admin_session_up,
            pending_rows,
            reconcile_actions,
            token_connections,
            token_connections_open,
            verifications,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// One HTTP request answered: `endpoint` is the route pattern (or
/// [`UNMATCHED`]), `result` the answer's code when it has one.
pub fn http_request(endpoint: &str, status: u16, result: Option<i64>, took: Duration) {
    let m = &*METRICS;
    let result = result.map_or_else(|| "none".to_owned(), |r| r.to_string());
    m.requests
        .get_or_create(&RequestLabels {
            endpoint: endpoint.to_owned(),
            status,
            result,
        })
        .inc();
    m.request_seconds
        .get_or_create(&EndpointLabel {
            endpoint: endpoint.to_owned(),
        })
        .observe(took.as_secs_f64());
}

/// One request refused by a rate limit or budget.
pub fn rate_limited(endpoint: &str) {
    METRICS
        .rate_limited
        .get_or_create(&EndpointLabel {
            endpoint: endpoint.to_owned(),
        })
        .inc();
}

/// One XEP-0133 command run (`ok`: the server answered; a refusal inside
/// the answer, e.g. "user exists", is the caller's to judge).
pub fn xmpp_command(command: &'static str, ok: bool, took: Duration) {
    let m = &*METRICS;
    m.xmpp_commands
        .get_or_create(&CommandLabels {
            command,
            outcome: outcome(ok),
        })
        .inc();
    m.xmpp_command_seconds
        .get_or_create(&CommandLabel { command })
        .observe(took.as_secs_f64());
}

/// One repair carried out (or failed) by the reconciler.
pub fn reconcile_action(operation: &'static str, ok: bool) {
    METRICS
        .reconcile_actions
        .get_or_create(&ActionLabels {
            operation,
            outcome: outcome(ok),
        })
        .inc();
}

/// One token verification answered.
pub fn token_verification(v: Verification) {
    METRICS.verifications[v as usize].inc();
}

/// A token service connection: counted when made, open until dropped.
pub struct OpenConnection(());

impl OpenConnection {
    pub fn new() -> OpenConnection {
        METRICS.token_connections.inc();
        METRICS.token_connections_open.inc();
        OpenConnection(())
    }
}

impl Default for OpenConnection {
    fn default() -> Self {
        OpenConnection::new()
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        METRICS.token_connections_open.dec();
    }
}

/// Values read at scrape time by the metrics listener.
pub struct Snapshot<'a> {
    pub admin_session_up: bool,
    /// Rows left mid-way by kind (`creating`, `deleting`, `jid_password`,
    /// `binding`, `unbinding`); `None` when the database did not answer.
    pub pending_rows: Option<&'a [(&'static str, i64)]>,
}

/// The metrics in the OpenMetrics text format, after setting the gauges
/// of `snapshot`.
pub fn render(snapshot: &Snapshot<'_>) -> String {
    let m = &*METRICS;
    m.admin_session_up.set(i64::from(snapshot.admin_session_up));
    if let Some(rows) = snapshot.pending_rows {
        for &(kind, n) in rows {
            m.pending_rows.get_or_create(&KindLabel { kind }).set(n);
        }
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &m.registry)
        .expect("writing to a String cannot fail");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_appear_in_the_text_with_their_labels() {
        http_request(
            "/unit_test_endpoint",
            200,
            Some(0),
            Duration::from_millis(3),
        );
        http_request(
            "/unit_test_endpoint",
            200,
            Some(0),
            Duration::from_millis(3),
        );
        rate_limited("/unit_test_endpoint");
        xmpp_command("unit-test-command", false, Duration::from_millis(2));
        let text = render(&Snapshot {
            admin_session_up: true,
            pending_rows: Some(&[("creating", 4)]),
        });
        assert!(text.contains(
            "jidgate_http_requests_total{endpoint=\"/unit_test_endpoint\",status=\"200\",result=\"0\"} 2"
        ));
        assert!(
            text.contains("jidgate_rate_limit_refusals_total{endpoint=\"/unit_test_endpoint\"} 1")
        );
        assert!(text.contains(
            "jidgate_xmpp_commands_total{command=\"unit-test-command\",outcome=\"error\"} 1"
        ));
        assert!(text.contains("jidgate_xmpp_admin_session_up 1"));
        assert!(text.contains("jidgate_pending_rows{kind=\"creating\"} 4"));
        assert!(text.contains("jidgate_token_verifications_total{result=\"valid\"}"));
        assert!(text.ends_with("# EOF\n"));
    }
}

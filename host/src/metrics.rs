//! Prometheus metrics (served at `/metrics` on the telemetry listener): HTTP requests, logins,
//! tokens issued, plugin calls and reloads. Labels never carry secrets or user data: routes are
//! templates (`/auth/{connector}`), connectors are config ids.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    pub connector: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    pub grant_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub connector: String,
    pub call: &'static str,
    /// ok, refused, trap, deadline, memory, denied, host_call_limit
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginCallLabels {
    pub connector: String,
    pub call: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub policy: String,
    pub call: &'static str,
    /// allow, deny, patch, or a failure: trap, deadline, memory, denied, host_call_limit,
    /// reserved_or_bad_patch, error
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyCallLabels {
    pub policy: String,
    pub call: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyFailureLabels {
    pub policy: String,
    pub call: &'static str,
    /// What `onError` made of it: deny or skip.
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

fn seconds_histogram() -> Histogram {
    // 50 µs .. ~6.5 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 18))
}

/// Every metric the broker keeps.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub logins: Family<LoginLabels, Counter>,
    pub tokens: Family<GrantLabels, Counter>,
    pub plugin_calls: Family<PluginLabels, Counter>,
    pub plugin_duration: Family<PluginCallLabels, Histogram, fn() -> Histogram>,
    pub reloads: Family<OutcomeLabels, Counter>,
    /// Expired storage rows removed by garbage collection.
    pub gc_collected: Counter,
    pub policy_calls: Family<PolicyLabels, Counter>,
    pub policy_failures: Family<PolicyFailureLabels, Counter>,
    pub policy_duration: Family<PolicyCallLabels, Histogram, fn() -> Histogram>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let m = Self {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(seconds_histogram),
            logins: Family::default(),
            tokens: Family::default(),
            plugin_calls: Family::default(),
            plugin_duration: Family::new_with_constructor(seconds_histogram),
            reloads: Family::default(),
            gc_collected: Counter::default(),
            policy_calls: Family::default(),
            policy_failures: Family::default(),
            policy_duration: Family::new_with_constructor(seconds_histogram),
            registry: Registry::default(),
        };
        registry.register("http_requests", "HTTP requests by route, method and status", m.http_requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request duration by route", m.http_duration.clone());
        registry.register("logins", "Logins by connector and outcome", m.logins.clone());
        registry.register("tokens_issued", "Token responses by grant type", m.tokens.clone());
        registry.register(
            "plugin_calls",
            "Connector plugin calls by connector, call and outcome",
            m.plugin_calls.clone(),
        );
        registry.register("plugin_call_duration_seconds", "Connector plugin call duration", m.plugin_duration.clone());
        registry.register("reloads", "Config reloads by outcome", m.reloads.clone());
        registry.register(
            "gc_collected_rows",
            "Expired storage rows (auth requests, codes, device requests, sessions, refresh tokens) removed by garbage collection",
            m.gc_collected.clone(),
        );
        registry.register("policy_calls", "Policy plugin calls by policy, call and outcome", m.policy_calls.clone());
        registry.register(
            "policy_failures",
            "Policy plugin failures by policy, call and what onError did (deny or skip)",
            m.policy_failures.clone(),
        );
        registry.register("policy_call_duration_seconds", "Policy plugin call duration", m.policy_duration.clone());
        Self { registry, ..m }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn login(&self, connector: &str, outcome: &'static str) {
        self.logins.get_or_create(&LoginLabels { connector: connector.into(), outcome }).inc();
    }

    pub fn plugin_call(&self, connector: &str, call: &'static str, outcome: &'static str, elapsed: Duration) {
        self.plugin_calls.get_or_create(&PluginLabels { connector: connector.into(), call, outcome }).inc();
        self.plugin_duration
            .get_or_create(&PluginCallLabels { connector: connector.into(), call })
            .observe(elapsed.as_secs_f64());
    }
}

impl Metrics {
    pub fn policy_call(&self, policy: &str, call: &'static str, outcome: &'static str, elapsed: Duration) {
        self.policy_calls.get_or_create(&PolicyLabels { policy: policy.into(), call, outcome }).inc();
        self.policy_duration
            .get_or_create(&PolicyCallLabels { policy: policy.into(), call })
            .observe(elapsed.as_secs_f64());
    }

    pub fn policy_failure(&self, policy: &str, call: &'static str, action: &'static str) {
        self.policy_failures.get_or_create(&PolicyFailureLabels { policy: policy.into(), call, action }).inc();
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

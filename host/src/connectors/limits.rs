//! Per-connector resource limits: defaults, the config block that overrides them, and the
//! memory limiter installed in every store; and the engine-wide per-component caps of the
//! pooling allocator (`plugins.pool`).

use std::time::Duration;

use serde::Deserialize;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Default deadline for one connector call, host calls included.
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_secs(5);
/// Default cap on a connector's linear memory.
pub const DEFAULT_MEMORY_MIB: u64 = 64;
/// Default cap on one HTTP response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1024 * 1024;
/// Default cap on host calls (http, ldap, jose) during one connector call.
pub const DEFAULT_MAX_HOST_CALLS: u32 = 64;
/// Largest memory cap a config may ask for; the pooling allocator reserves this much per slot.
pub const MAX_MEMORY_MIB: u64 = 1024;

/// The `limits:` block of a connector entry; every key is optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitsConfig {
    /// Call deadline, e.g. `5s`, `1500ms`.
    #[serde(default)]
    pub call_deadline: Option<String>,
    /// Memory cap in MiB.
    #[serde(default, rename = "memoryMiB")]
    pub memory_mib: Option<u64>,
    /// Largest HTTP response body in bytes.
    #[serde(default)]
    pub max_response_bytes: Option<u64>,
    /// Host calls allowed per connector call.
    #[serde(default)]
    pub max_host_calls: Option<u32>,
}

/// A `limits:` value out of range: the key, what was written and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    #[error("limits.callDeadline: {0:?} is not a duration; write e.g. \"5s\" or \"1500ms\"")]
    CallDeadline(String),
    #[error("limits.memoryMiB: {0} is out of range; write a number from 1 to {MAX_MEMORY_MIB}")]
    MemoryMib(u64),
    #[error("limits.maxResponseBytes: must be at least 1")]
    MaxResponseBytes,
}

/// Resolved limits for one connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub call_deadline: Duration,
    pub memory_bytes: u64,
    pub max_response_bytes: u64,
    pub max_host_calls: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            call_deadline: DEFAULT_CALL_DEADLINE,
            memory_bytes: DEFAULT_MEMORY_MIB * 1024 * 1024,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_host_calls: DEFAULT_MAX_HOST_CALLS,
        }
    }
}

impl Limits {
    /// Applies a config block over the defaults; the error names the key and what to write.
    pub fn from_config(config: &LimitsConfig) -> Result<Self, LimitsError> {
        let mut limits = Self::default();
        if let Some(text) = &config.call_deadline {
            limits.call_deadline =
                parse_duration(text).filter(|d| !d.is_zero()).ok_or_else(|| LimitsError::CallDeadline(text.clone()))?;
        }
        if let Some(mib) = config.memory_mib {
            if mib == 0 || mib > MAX_MEMORY_MIB {
                return Err(LimitsError::MemoryMib(mib));
            }
            limits.memory_bytes = mib * 1024 * 1024;
        }
        if let Some(bytes) = config.max_response_bytes {
            if bytes == 0 {
                return Err(LimitsError::MaxResponseBytes);
            }
            limits.max_response_bytes = bytes;
        }
        if let Some(calls) = config.max_host_calls {
            limits.max_host_calls = calls;
        }
        Ok(limits)
    }

    pub fn memory_mib(&self) -> u64 {
        self.memory_bytes / (1024 * 1024)
    }
}

/// Default per-component caps of the pooling allocator. Components from other toolchains need
/// more than a Rust one (componentize-py's CPython: 38 core instances; StarlingMonkey and
/// QuickJS: a few memories and tables), so the defaults leave room for them.
pub const DEFAULT_CORE_INSTANCES_PER_COMPONENT: u32 = 64;
pub const DEFAULT_MEMORIES_PER_COMPONENT: u32 = 8;
pub const DEFAULT_TABLES_PER_COMPONENT: u32 = 32;
/// The largest per-component caps `plugins.pool` may ask for: the pool reserves every slot of
/// every kind up front, so a cap may not exceed what one component slot can be given.
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 256;
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 32;
pub const MAX_TABLES_PER_COMPONENT: u32 = 128;

/// The `plugins.pool:` block: how much of the pooling allocator one component may use. Read
/// when the broker starts (the engine is built once per process).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PoolConfig {
    /// Core module instances one component may create (default 64).
    #[serde(default)]
    pub max_core_instances_per_component: Option<u32>,
    /// Linear memories one component may define (default 8).
    #[serde(default)]
    pub max_memories_per_component: Option<u32>,
    /// Tables one component may define (default 32).
    #[serde(default)]
    pub max_tables_per_component: Option<u32>,
}

/// A `plugins.pool` value out of range: the key, what was written and the range to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugins.pool.{key}: {value} is out of range; write a number from 1 to {max}")]
pub struct PoolError {
    pub key: &'static str,
    pub value: u32,
    pub max: u32,
}

/// Resolved per-component caps of the pooling allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    pub core_instances_per_component: u32,
    pub memories_per_component: u32,
    pub tables_per_component: u32,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            core_instances_per_component: DEFAULT_CORE_INSTANCES_PER_COMPONENT,
            memories_per_component: DEFAULT_MEMORIES_PER_COMPONENT,
            tables_per_component: DEFAULT_TABLES_PER_COMPONENT,
        }
    }
}

impl PoolLimits {
    /// Applies a `plugins.pool` block over the defaults; the error names the key and the range.
    pub fn from_config(config: &PoolConfig) -> Result<Self, PoolError> {
        let pick = |key: &'static str, value: Option<u32>, default: u32, max: u32| match value {
            None => Ok(default),
            Some(value) if (1..=max).contains(&value) => Ok(value),
            Some(value) => Err(PoolError { key, value, max }),
        };
        Ok(Self {
            core_instances_per_component: pick(
                "maxCoreInstancesPerComponent",
                config.max_core_instances_per_component,
                DEFAULT_CORE_INSTANCES_PER_COMPONENT,
                MAX_CORE_INSTANCES_PER_COMPONENT,
            )?,
            memories_per_component: pick(
                "maxMemoriesPerComponent",
                config.max_memories_per_component,
                DEFAULT_MEMORIES_PER_COMPONENT,
                MAX_MEMORIES_PER_COMPONENT,
            )?,
            tables_per_component: pick(
                "maxTablesPerComponent",
                config.max_tables_per_component,
                DEFAULT_TABLES_PER_COMPONENT,
                MAX_TABLES_PER_COMPONENT,
            )?,
        })
    }
}

/// Parses `250ms`, `5s`, `2m`, `1h` (a bare number means seconds).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// The store's resource limiter: wasmtime's [`StoreLimits`] with `trap_on_grow_failure`, plus a
/// flag so the call's error can say "memory" without parsing trap text.
pub(crate) struct MemoryLimiter {
    inner: StoreLimits,
    pub(crate) exceeded: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        let inner = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX))
            .trap_on_grow_failure(true)
            .build();
        Self { inner, exceeded: false }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let outcome = self.inner.memory_growing(current, desired, maximum);
        if !matches!(outcome, Ok(true)) {
            self.exceeded = true;
        }
        outcome
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.exceeded = true;
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }
    fn tables(&self) -> usize {
        self.inner.tables()
    }
    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("fast"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
    }

    #[test]
    fn pool_caps_default_and_refuse_out_of_range_values() {
        assert_eq!(PoolLimits::from_config(&PoolConfig::default()).unwrap(), PoolLimits::default());
        let cfg = PoolConfig { max_core_instances_per_component: Some(100), ..Default::default() };
        assert_eq!(PoolLimits::from_config(&cfg).unwrap().core_instances_per_component, 100);
        let bad = PoolConfig { max_tables_per_component: Some(0), ..Default::default() };
        let err = PoolLimits::from_config(&bad).unwrap_err().to_string();
        assert_eq!(err, "plugins.pool.maxTablesPerComponent: 0 is out of range; write a number from 1 to 128");
        let bad = PoolConfig { max_memories_per_component: Some(1000), ..Default::default() };
        assert!(PoolLimits::from_config(&bad).unwrap_err().to_string().contains("maxMemoriesPerComponent"));
    }

    #[test]
    fn config_overrides_defaults_and_names_bad_keys() {
        let cfg = LimitsConfig { memory_mib: Some(16), call_deadline: Some("2s".into()), ..Default::default() };
        let limits = Limits::from_config(&cfg).unwrap();
        assert_eq!(limits.memory_bytes, 16 << 20);
        assert_eq!(limits.call_deadline, Duration::from_secs(2));
        assert_eq!(limits.max_host_calls, DEFAULT_MAX_HOST_CALLS);
        let bad = LimitsConfig { call_deadline: Some("soon".into()), ..Default::default() };
        assert!(Limits::from_config(&bad).unwrap_err().to_string().contains("limits.callDeadline"));
        let bad = LimitsConfig { memory_mib: Some(0), ..Default::default() };
        assert!(Limits::from_config(&bad).unwrap_err().to_string().contains("limits.memoryMiB"));
    }
}

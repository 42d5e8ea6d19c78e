//! The one wasmtime `Engine` of the process: component model (with the async ABI, which
//! QuickJS builds emit), async, epoch interruption and the pooling allocator (per-component
//! caps from `plugins.pool`; falling back, loudly, to on-demand allocation), plus the `Linker`
//! holding WASI (nothing granted), `wasi:http` (through the `http` grant) and our imports
//! (linked by `state::add_to_linker`).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::cache::CompileCache;
use super::limits::{MAX_MEMORY_MIB, PoolLimits};
use super::state::{self, CallState};

/// How often the epoch advances; guest code yields to the runtime at least this often and
/// is stopped within one tick of its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Slots in the pooling allocator: connector calls that can run at once.
const POOL_INSTANCES: u32 = 256;

/// The engine, its linker and the compile cache, shared by every connector.
pub struct PluginEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<CallState>,
    pub(crate) cache: CompileCache,
    pooling: bool,
    caps: PoolLimits,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("pooling", &self.pooling)
            .field("caps", &self.caps)
            .field("cache", &self.cache)
            .finish()
    }
}

fn config(pooling: bool, caps: PoolLimits) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Components lifted or lowered with the async ABI (`jco componentize --backend quickjs`
    // emits it by default) are accepted; our imports stay host functions they call.
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_INSTANCES)
            .total_core_instances(POOL_INSTANCES * 8)
            .total_memories(POOL_INSTANCES * 2)
            .total_tables(POOL_INSTANCES * 4)
            .total_stacks(POOL_INSTANCES)
            .max_core_instances_per_component(caps.core_instances_per_component)
            .max_memories_per_component(caps.memories_per_component)
            .max_tables_per_component(caps.tables_per_component)
            .max_memory_size(usize::try_from(MAX_MEMORY_MIB << 20).unwrap_or(usize::MAX))
            // Reset a slot's memory by rewriting only the pages the call dirtied (Linux 6.7+
            // pagemap scan) and keep the first pages resident: a fresh instance then costs
            // ~15 µs instead of ~45 µs (madvise and page faults dominated). Memory is still
            // reset to its initial image between calls.
            .linear_memory_keep_resident(256 << 10)
            .table_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

impl PluginEngine {
    /// Builds the engine. `cache` is where compiled components are kept (`None`: no disk cache).
    pub fn new(cache: CompileCache) -> anyhow::Result<Arc<Self>> {
        Self::with_pool(cache, PoolLimits::default())
    }

    /// As `new`, with the per-component caps of `plugins.pool`.
    pub fn with_pool(cache: CompileCache, caps: PoolLimits) -> anyhow::Result<Arc<Self>> {
        let (engine, pooling) = match Engine::new(&config(true, caps)) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::error!(
                    "cannot reserve the pooling allocator ({e:#}); FALLING BACK to on-demand allocation: \
                     every connector call will map fresh memory and be slower. Raise the virtual memory \
                     limit (ulimit -v) or the overcommit setting to restore pooling"
                );
                (Engine::new(&config(false, caps))?, false)
            }
        };
        let mut linker = Linker::new(&engine);
        state::add_to_linker(&mut linker)?;
        start_epoch_ticker(&engine);
        let cache = cache.for_engine(&engine);
        Ok(Arc::new(Self { engine, linker, cache, pooling, caps }))
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// The per-component caps the pool was built with (`plugins.pool`).
    pub fn pool_caps(&self) -> PoolLimits {
        self.caps
    }
}

/// Advances the engine's epoch every tick until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("portcullis-epoch".into()).spawn(move || {
        loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the epoch thread ({e}); connector deadlines fall back to the call timeout");
    }
}

//! Host-side bindings, one module per supported contract version (each a `bindgen!` of its
//! frozen `wit/<version>/` folder), behind one enum that speaks the broker's vocabulary
//! (`connectors::types`). Nothing outside `connectors` sees them.
//!
//! Which bindings a component gets is decided by [`Contract::of`] from the version its
//! `connector` export names; the rules are in docs/writing-connectors.md ("Contract versions").

mod convert;
pub mod v0_1;
pub mod v0_2;
pub mod v0_3;

use wasmtime::component::{HasData, InstancePre, Linker};
use wasmtime::{AsContextMut, Engine};

use super::types::{CallbackRequest, Identity, LoginRedirect, Metadata, Refusal, Scopes};

/// The interfaces of the newest contract version: what the capabilities implement first.
pub(crate) use self::v0_3::portcullis::connector as current;
/// Why a host import failed, in the newest contract version.
pub use self::v0_3::portcullis::connector::types::HostError;

/// The WIT package every connector world belongs to.
pub const WIT_PACKAGE: &str = "portcullis:connector";
/// The newest contract version, the one the SDK and the shipped plugins target.
pub const WIT_VERSION: &str = "0.3.0";
/// Every contract version this host binds, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0"];

/// A contract version this host has bindings for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Contract {
    V0_1,
    V0_2,
    V0_3,
}

impl Contract {
    /// The bindings for a component targeting `version`: the same `MAJOR.MINOR` as one this
    /// host binds, and a patch no newer than that one's (a patch release only changes docs, but
    /// a component built against a patch this broker has never seen is refused rather than
    /// trusted).
    pub fn of(version: &str) -> Option<Self> {
        let parse = |v: &str| -> Option<(u64, u64, u64)> {
            let mut it = v.split(['.', '-', '+']).map(|p| p.parse::<u64>().ok());
            Some((it.next()??, it.next()??, it.next()??))
        };
        let (major, minor, patch) = parse(version)?;
        [Self::V0_1, Self::V0_2, Self::V0_3]
            .into_iter()
            .find(|c| parse(c.version()).is_some_and(|(m, n, p)| m == major && n == minor && patch <= p))
    }

    /// The exact version these bindings were generated from.
    pub fn version(self) -> &'static str {
        match self {
            Self::V0_1 => "0.1.0",
            Self::V0_2 => "0.2.0",
            Self::V0_3 => "0.3.0",
        }
    }

    /// Whether the contract has the `token-exchange` export (0.2.0 and later).
    pub fn has_token_exchange(self) -> bool {
        self >= Self::V0_2
    }
}

/// A component linked against the bindings of the version it targets.
pub(crate) enum BindingsPre<T: 'static> {
    V0_1(v0_1::PluginPre<T>),
    V0_2(v0_2::PluginPre<T>),
    V0_3(v0_3::PluginPre<T>),
}

/// One instance's exports, in the version its component targets.
pub(crate) enum Bindings {
    V0_1(v0_1::Plugin),
    V0_2(v0_2::Plugin),
    V0_3(v0_3::Plugin),
}

impl<T: Send + 'static> BindingsPre<T> {
    pub(crate) fn new(contract: Contract, pre: InstancePre<T>) -> wasmtime::Result<Self> {
        Ok(match contract {
            Contract::V0_1 => Self::V0_1(v0_1::PluginPre::new(pre)?),
            Contract::V0_2 => Self::V0_2(v0_2::PluginPre::new(pre)?),
            Contract::V0_3 => Self::V0_3(v0_3::PluginPre::new(pre)?),
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        match self {
            Self::V0_1(pre) => pre.engine(),
            Self::V0_2(pre) => pre.engine(),
            Self::V0_3(pre) => pre.engine(),
        }
    }

    pub(crate) async fn instantiate_async(&self, store: impl AsContextMut<Data = T>) -> wasmtime::Result<Bindings> {
        Ok(match self {
            Self::V0_1(pre) => Bindings::V0_1(pre.instantiate_async(store).await?),
            Self::V0_2(pre) => Bindings::V0_2(pre.instantiate_async(store).await?),
            Self::V0_3(pre) => Bindings::V0_3(pre.instantiate_async(store).await?),
        })
    }
}

/// What an export call returns: a trap, or the connector's answer in broker terms.
pub(crate) type CallResult<T> = wasmtime::Result<Result<T, Refusal>>;

/// Maps the guest's answer into broker types.
fn answer<A, B: From<A>, E: Into<Refusal>>(result: wasmtime::Result<Result<A, E>>) -> CallResult<B> {
    result.map(|r| r.map(B::from).map_err(Into::into))
}

/// Runs `$body` with `$p` bound to an instance's bindings, whatever their version: the
/// generated export methods have the same names and shapes in every version.
macro_rules! each_version {
    ($bindings:expr, $p:ident => $body:expr) => {
        match $bindings {
            Bindings::V0_1($p) => $body,
            Bindings::V0_2($p) => $body,
            Bindings::V0_3($p) => $body,
        }
    };
}

impl Bindings {
    pub(crate) async fn describe<S>(&self, store: S, config: &str) -> CallResult<Metadata>
    where
        S: AsContextMut<Data: Send>,
    {
        each_version!(self, p => answer(p.portcullis_connector_connector().call_describe(store, config).await))
    }

    pub(crate) async fn login_url<S>(
        &self,
        store: S,
        config: &str,
        scopes: Scopes,
        callback_url: &str,
        state: &str,
    ) -> CallResult<LoginRedirect>
    where
        S: AsContextMut<Data: Send>,
    {
        each_version!(self, p => answer(
            p.portcullis_connector_connector()
                .call_login_url(store, config, scopes.into(), callback_url, state)
                .await,
        ))
    }

    pub(crate) async fn handle_callback<S>(
        &self,
        store: S,
        config: &str,
        scopes: Scopes,
        request: CallbackRequest,
    ) -> CallResult<Identity>
    where
        S: AsContextMut<Data: Send>,
    {
        each_version!(self, p => {
            let request = request.into();
            answer(p.portcullis_connector_connector().call_handle_callback(store, config, scopes.into(), &request).await)
        })
    }

    pub(crate) async fn login<S>(
        &self,
        store: S,
        config: &str,
        scopes: Scopes,
        username: &str,
        password: &str,
    ) -> CallResult<Option<Identity>>
    where
        S: AsContextMut<Data: Send>,
    {
        each_version!(self, p => p
            .portcullis_connector_connector()
            .call_login(store, config, scopes.into(), username, password)
            .await
            .map(|r| r.map(|found| found.map(Identity::from)).map_err(Refusal::from)))
    }

    pub(crate) async fn refresh<S>(
        &self,
        store: S,
        config: &str,
        scopes: Scopes,
        identity: Identity,
    ) -> CallResult<Identity>
    where
        S: AsContextMut<Data: Send>,
    {
        each_version!(self, p => {
            let identity = identity.into();
            answer(p.portcullis_connector_connector().call_refresh(store, config, scopes.into(), &identity).await)
        })
    }

    /// `token-exchange.token-identity`; components built against 0.1 do not have it.
    pub(crate) async fn token_identity<S>(
        &self,
        store: S,
        config: &str,
        scopes: Scopes,
        subject_token_type: &str,
        subject_token: &str,
    ) -> CallResult<Identity>
    where
        S: AsContextMut<Data: Send>,
    {
        match self {
            Self::V0_1(_) => Ok(Err(Refusal::Unsupported(
                "token exchange needs a connector built against contract 0.2.0 or later; this one targets 0.1".into(),
            ))),
            Self::V0_2(p) => answer(
                p.portcullis_connector_token_exchange()
                    .call_token_identity(store, config, scopes.into(), subject_token_type, subject_token)
                    .await,
            ),
            Self::V0_3(p) => answer(
                p.portcullis_connector_token_exchange()
                    .call_token_identity(store, config, scopes.into(), subject_token_type, subject_token)
                    .await,
            ),
        }
    }
}

/// The `types` interface declares types only: linking it takes a host with no methods.
pub(crate) struct TypesHost;

impl v0_1::portcullis::connector::types::Host for TypesHost {}
impl v0_2::portcullis::connector::types::Host for TypesHost {}
impl v0_3::portcullis::connector::types::Host for TypesHost {}

struct HasTypes;

impl HasData for HasTypes {
    type Data<'a> = TypesHost;
}

/// Links the `types` interface of every supported contract version.
pub(crate) fn add_types_to_linker<T: Send + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    v0_1::portcullis::connector::types::add_to_linker::<T, HasTypes>(linker, |_| TypesHost)?;
    v0_2::portcullis::connector::types::add_to_linker::<T, HasTypes>(linker, |_| TypesHost)?;
    v0_3::portcullis::connector::types::add_to_linker::<T, HasTypes>(linker, |_| TypesHost)
}

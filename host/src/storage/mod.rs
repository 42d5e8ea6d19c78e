//! Storage: one backend contract (`backend`), four backends (memory, SQLite, PostgreSQL, MySQL), and
//! the typed objects the broker keeps (`objects`).

pub mod api;
pub mod backend;
pub mod memory;
pub mod objects;
pub mod sql;
mod sqlite_inline;

pub use backend::{Backend, Kind, Record, Result, StorageError, Swap};
pub use memory::MemoryBackend;
pub use objects::{
    AuthCode, AuthRequest, Batch, DEVICE_EXPIRED_KEPT, DeviceRequest, DeviceStatus, KeySet, PublicKey, RefreshToken,
    Session, SessionClient, Store, StoredKey, unstored_grant_id,
};
pub use sql::SqlBackend;

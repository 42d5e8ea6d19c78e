//! An in-process storage backend for tests and single-replica demos: one mutex around a map.
//! Nothing survives a restart and nothing is shared between processes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::backend::{Backend, Kind, Record, Result, StorageError, Swap};

/// Records in a `HashMap` keyed by kind and id. Every operation holds the one lock for its
/// whole duration, which makes each of them atomic.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    records: Mutex<Records>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        // No operation can panic halfway through a change, so a poisoned map is still consistent.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn is_live(record: &Record, now: i64) -> bool {
    record.expires_at > now
}

type Records = HashMap<(Kind, String), Record>;

/// Whether a live record holds `kind`/`id` (an insert there is a conflict).
fn taken(records: &Records, kind: Kind, id: &str, now: i64) -> bool {
    records.get(&(kind, id.to_owned())).is_some_and(|existing| is_live(existing, now))
}

/// `update`'s compare-and-swap on the locked map: true if it changed the record.
fn swap(records: &mut Records, change: Swap<'_>, now: i64) -> bool {
    match records.get_mut(&(change.kind, change.id.to_owned())) {
        Some(record) if is_live(record, now) && record.version == change.expected_version => {
            record.data = change.data.to_owned();
            record.expires_at = change.expires_at;
            record.version = change.expected_version.saturating_add(1);
            true
        }
        _ => false,
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn insert(&self, kind: Kind, id: &str, record: &Record, now: i64) -> Result<()> {
        let mut records = self.records();
        if taken(&records, kind, id, now) {
            return Err(StorageError::Conflict { kind: kind.as_str() });
        }
        records.insert((kind, id.to_owned()), Record { version: 1, ..record.clone() });
        Ok(())
    }

    /// All or nothing here: the map is checked under the lock before anything is written.
    async fn insert_many(&self, batch: &[(Kind, &str, &Record)], now: i64) -> Result<()> {
        let mut records = self.records();
        if let Some((kind, _, _)) = batch.iter().find(|(kind, id, _)| taken(&records, *kind, id, now)) {
            return Err(StorageError::Conflict { kind: kind.as_str() });
        }
        for (kind, id, record) in batch {
            records.insert((*kind, (*id).to_owned()), Record { version: 1, ..(*record).clone() });
        }
        Ok(())
    }

    async fn get(&self, kind: Kind, id: &str, now: i64) -> Result<Option<Record>> {
        Ok(self.records().get(&(kind, id.to_owned())).filter(|record| is_live(record, now)).cloned())
    }

    async fn update(
        &self,
        kind: Kind,
        id: &str,
        expected_version: i64,
        data: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        Ok(swap(&mut self.records(), Swap { kind, id, expected_version, data, expires_at }, now))
    }

    /// Both or neither, under the one lock.
    async fn insert_and_update(
        &self,
        kind: Kind,
        id: &str,
        record: &Record,
        change: Swap<'_>,
        now: i64,
    ) -> Result<bool> {
        let mut records = self.records();
        if taken(&records, kind, id, now) {
            return Err(StorageError::Conflict { kind: kind.as_str() });
        }
        if !swap(&mut records, change, now) {
            return Ok(false);
        }
        records.insert((kind, id.to_owned()), Record { version: 1, ..record.clone() });
        Ok(true)
    }

    async fn take(&self, kind: Kind, id: &str, now: i64) -> Result<Option<Record>> {
        let mut records = self.records();
        let key = (kind, id.to_owned());
        if records.get(&key).is_some_and(|record| is_live(record, now)) { Ok(records.remove(&key)) } else { Ok(None) }
    }

    async fn delete(&self, kind: Kind, id: &str) -> Result<bool> {
        Ok(self.records().remove(&(kind, id.to_owned())).is_some())
    }

    async fn delete_family(&self, kind: Kind, family: &str) -> Result<u64> {
        let mut records = self.records();
        let before = records.len();
        records.retain(|(k, _), record| !(*k == kind && record.family.as_deref() == Some(family)));
        Ok(count(before.saturating_sub(records.len())))
    }

    async fn list_family(&self, kind: Kind, family: &str, now: i64) -> Result<Vec<String>> {
        let mut ids: Vec<String> = self
            .records()
            .iter()
            .filter(|((k, _), record)| *k == kind && record.family.as_deref() == Some(family) && is_live(record, now))
            .map(|((_, id), _)| id.clone())
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn collect_garbage(&self, now: i64) -> Result<u64> {
        let mut records = self.records();
        let before = records.len();
        records.retain(|_, record| is_live(record, now));
        Ok(count(before.saturating_sub(records.len())))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

//! Storage conformance: one suite of checks run against every backend (memory, SQLite, PostgreSQL,
//! MySQL), plus what only a shared database can show (two replicas on one PostgreSQL, MySQL or
//! SQLite database).
//!
//! To add a check, write an `async fn name(b: &dyn Backend)` below and add `name` to the
//! `conformance!` list at the end: it then runs as `memory::name`, `sqlite::name`,
//! `postgres::name` and `mysql::name`. The servers are found or started by
//! `portcullis_tests::dbserver`: the one `PORTCULLIS_TEST_POSTGRES_URL` / `PORTCULLIS_TEST_MYSQL_URL`
//! names (ending in `/`), else the local one on 5432 / 3306, else a throwaway server the test process
//! starts; each test creates its own database and drops it afterwards, and the tests fail, not
//! skip, when no server can be had.

use futures::future::join_all;
use portcullis::storage::{Backend, Kind, MemoryBackend, Record, SqlBackend, StorageError, Swap};
use portcullis_tests::{TestDatabase, TestMysqlDatabase};

const NOW: i64 = 1_700_000_000;
const RACERS: usize = 20;

fn record(data: &str, family: Option<&str>, expires_at: i64) -> Record {
    Record { data: data.to_owned(), family: family.map(str::to_owned), version: 1, expires_at }
}

// ---------------------------------------------------------------------------------------------
// The suite: every backend must pass every check.
// ---------------------------------------------------------------------------------------------

async fn insert_get_conflict(b: &dyn Backend) {
    let data = r#"{"sub":"ålice \"q\"","n":1}"#;
    b.insert(Kind::AuthCode, "code-1", &record(data, Some("fam"), NOW + 60), NOW).await.unwrap();
    let got = b.get(Kind::AuthCode, "code-1", NOW).await.unwrap();
    assert_eq!(got, Some(record(data, Some("fam"), NOW + 60)));

    let err = b.insert(Kind::AuthCode, "code-1", &record("{}", None, NOW + 60), NOW).await.unwrap_err();
    assert!(matches!(err, StorageError::Conflict { kind: "auth_code" }), "{err:?}");
    assert_eq!(err.to_string(), "a auth_code with this id already exists");
    assert_eq!(b.get(Kind::AuthCode, "code-1", NOW).await.unwrap().unwrap().data, data, "a conflict changes nothing");

    // Kinds are separate namespaces; the version passed in is ignored.
    let mut other = record("{}", None, NOW + 60);
    other.version = 42;
    b.insert(Kind::RefreshToken, "code-1", &other, NOW).await.unwrap();
    assert_eq!(b.get(Kind::RefreshToken, "code-1", NOW).await.unwrap().unwrap().version, 1);

    assert_eq!(b.get(Kind::AuthCode, "missing", NOW).await.unwrap(), None);
}

async fn concurrent_inserts_have_one_winner(b: &dyn Backend) {
    let inserts = (0..RACERS).map(|i| {
        let r = record(&format!(r#"{{"writer":{i}}}"#), None, NOW + 60);
        async move { b.insert(Kind::Session, "s", &r, NOW).await }
    });
    let results = join_all(inserts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(StorageError::Conflict { .. }))), "{results:?}");
}

async fn expired_records_are_invisible_and_replaceable(b: &dyn Backend) {
    let k = Kind::AuthRequest;
    b.insert(k, "req", &record("old", Some("f"), NOW + 10), NOW).await.unwrap();
    assert!(b.update(k, "req", 1, "old-2", NOW + 10, NOW).await.unwrap());

    // Live up to the second before `expires_at`, gone from it on.
    assert!(b.get(k, "req", NOW + 9).await.unwrap().is_some());
    let expired = NOW + 10;
    assert_eq!(b.get(k, "req", expired).await.unwrap(), None);
    assert_eq!(b.take(k, "req", expired).await.unwrap(), None);
    assert!(!b.update(k, "req", 2, "new", NOW + 100, expired).await.unwrap());
    assert_eq!(b.list_family(k, "f", expired).await.unwrap(), Vec::<String>::new());

    // An expired record does not block an insert, which starts over at version 1.
    b.insert(k, "req", &record("new", None, NOW + 100), expired).await.unwrap();
    assert_eq!(b.get(k, "req", expired).await.unwrap(), Some(record("new", None, NOW + 100)));
    assert_eq!(b.list_family(k, "f", expired).await.unwrap(), Vec::<String>::new(), "the family was replaced too");
}

async fn update_is_compare_and_swap(b: &dyn Backend) {
    let k = Kind::RefreshToken;
    b.insert(k, "rt", &record("v1", Some("family"), NOW + 60), NOW).await.unwrap();

    assert!(b.update(k, "rt", 1, "v2", NOW + 120, NOW).await.unwrap());
    let got = b.get(k, "rt", NOW).await.unwrap().unwrap();
    assert_eq!(got, Record { data: "v2".into(), family: Some("family".into()), version: 2, expires_at: NOW + 120 });

    assert!(!b.update(k, "rt", 1, "stale", NOW + 500, NOW).await.unwrap(), "a stale version must lose");
    assert_eq!(b.get(k, "rt", NOW).await.unwrap(), Some(got), "a lost swap changes nothing");

    assert!(b.update(k, "rt", 2, "v3", NOW + 120, NOW).await.unwrap());
    assert_eq!(b.get(k, "rt", NOW).await.unwrap().unwrap().version, 3);
    assert!(!b.update(k, "missing", 1, "x", NOW + 60, NOW).await.unwrap());
    assert!(!b.update(Kind::Session, "rt", 3, "x", NOW + 60, NOW).await.unwrap(), "other kind, same id");

    // An update may shorten the life of a record, even into the past.
    assert!(b.update(k, "rt", 3, "v4", NOW, NOW).await.unwrap());
    assert_eq!(b.get(k, "rt", NOW).await.unwrap(), None);
}

async fn concurrent_updates_have_one_winner(b: &dyn Backend) {
    let k = Kind::Keys;
    b.insert(k, "signing", &record("v1", None, NOW + 60), NOW).await.unwrap();
    let updates = (0..RACERS).map(|i| async move {
        let data = format!("writer-{i}");
        let won = b.update(k, "signing", 1, &data, NOW + 60, NOW).await.unwrap();
        won.then_some(data)
    });
    let winners: Vec<String> = join_all(updates).await.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    let got = b.get(k, "signing", NOW).await.unwrap().unwrap();
    assert_eq!((got.version, Some(got.data)), (2, winners.into_iter().next()));
}

async fn take_returns_once(b: &dyn Backend) {
    let k = Kind::AuthCode;
    b.insert(k, "code", &record("payload", Some("fam"), NOW + 60), NOW).await.unwrap();
    assert_eq!(b.take(k, "code", NOW).await.unwrap(), Some(record("payload", Some("fam"), NOW + 60)));
    assert_eq!(b.take(k, "code", NOW).await.unwrap(), None);
    assert_eq!(b.get(k, "code", NOW).await.unwrap(), None);
    assert!(!b.delete(k, "code").await.unwrap(), "take deletes");
    b.insert(k, "code", &record("again", None, NOW + 60), NOW).await.unwrap();
}

async fn concurrent_takes_have_one_winner(b: &dyn Backend) {
    let k = Kind::AuthCode;
    b.insert(k, "code", &record("payload", None, NOW + 60), NOW).await.unwrap();
    let takes = (0..RACERS).map(|_| b.take(k, "code", NOW));
    let taken: Vec<Record> = join_all(takes).await.into_iter().filter_map(Result::unwrap).collect();
    assert_eq!(taken, vec![record("payload", None, NOW + 60)]);
}

async fn delete_and_families(b: &dyn Backend) {
    let s = Kind::Session;
    for id in ["s3", "s1", "s2"] {
        b.insert(s, id, &record("{}", Some("alice"), NOW + 60), NOW).await.unwrap();
    }
    b.insert(s, "s-expiring", &record("{}", Some("alice"), NOW + 1), NOW).await.unwrap();
    b.insert(s, "s4", &record("{}", Some("bob"), NOW + 60), NOW).await.unwrap();
    b.insert(s, "s5", &record("{}", None, NOW + 60), NOW).await.unwrap();
    b.insert(Kind::RefreshToken, "r1", &record("{}", Some("alice"), NOW + 60), NOW).await.unwrap();

    assert_eq!(b.list_family(s, "alice", NOW).await.unwrap(), ["s-expiring", "s1", "s2", "s3"]);
    assert_eq!(b.list_family(s, "alice", NOW + 1).await.unwrap(), ["s1", "s2", "s3"], "only live records");
    assert_eq!(b.list_family(s, "nobody", NOW).await.unwrap(), Vec::<String>::new());

    assert!(b.delete(s, "s1").await.unwrap());
    assert!(!b.delete(s, "s1").await.unwrap());
    assert_eq!(b.get(s, "s-expiring", NOW + 1).await.unwrap(), None);
    assert!(b.delete(s, "s-expiring").await.unwrap(), "delete removes expired records too");

    b.insert(s, "s6", &record("{}", Some("alice"), NOW + 1), NOW).await.unwrap();
    assert_eq!(b.delete_family(s, "alice").await.unwrap(), 3, "s2, s3 and the expiring s6");
    assert_eq!(b.delete_family(s, "alice").await.unwrap(), 0);
    assert_eq!(b.list_family(s, "alice", NOW).await.unwrap(), Vec::<String>::new());
    assert_eq!(b.list_family(s, "bob", NOW).await.unwrap(), ["s4"]);
    assert!(b.get(s, "s5", NOW).await.unwrap().is_some());
    assert!(b.get(Kind::RefreshToken, "r1", NOW).await.unwrap().is_some(), "other kinds keep their families");
}

async fn collect_garbage_removes_only_expired(b: &dyn Backend) {
    b.insert(Kind::AuthCode, "a", &record("{}", None, NOW + 10), NOW).await.unwrap();
    b.insert(Kind::Session, "b", &record("{}", Some("f"), NOW + 20), NOW).await.unwrap();
    b.insert(Kind::Keys, "c", &record("{}", None, NOW + 30), NOW).await.unwrap();

    assert_eq!(b.collect_garbage(NOW).await.unwrap(), 0);
    assert_eq!(b.collect_garbage(NOW + 20).await.unwrap(), 2);
    assert_eq!(b.collect_garbage(NOW + 20).await.unwrap(), 0);
    // Seen from before their expiry, the collected records are really gone and the other is not.
    assert_eq!(b.get(Kind::AuthCode, "a", NOW).await.unwrap(), None);
    assert_eq!(b.get(Kind::Session, "b", NOW).await.unwrap(), None);
    assert!(b.get(Kind::Keys, "c", NOW).await.unwrap().is_some());
}

/// More expired rows than one batch (`GC_BATCH`): one run collects them all and leaves the live
/// ones, whatever the backend.
async fn garbage_collection_goes_on_past_one_batch(b: &dyn Backend) {
    let rows = 2 * portcullis::storage::sql::GC_BATCH + 500;
    let expired = record("{}", None, NOW - 1);
    for start in (0..rows).step_by(100) {
        let ids: Vec<String> = (start..(start + 100).min(rows)).map(|i| format!("abandoned-{i}")).collect();
        for done in join_all(ids.iter().map(|id| b.insert(Kind::AuthRequest, id, &expired, NOW - 10))).await {
            done.unwrap();
        }
    }
    b.insert(Kind::AuthRequest, "live", &record("{}", None, NOW + 600), NOW).await.unwrap();
    assert_eq!(b.collect_garbage(NOW).await.unwrap(), rows, "one run collects every batch");
    assert!(b.get(Kind::AuthRequest, "live", NOW).await.unwrap().is_some());
    assert_eq!(b.collect_garbage(NOW).await.unwrap(), 0);
}

async fn ping(b: &dyn Backend) {
    b.ping().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Fixtures.
// ---------------------------------------------------------------------------------------------

async fn sqlite_in(dir: &tempfile::TempDir) -> SqlBackend {
    SqlBackend::sqlite(&dir.path().join("portcullis.sqlite")).await.unwrap()
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $case() {
                super::$case(&super::MemoryBackend::new()).await;
            })*
        }
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                let dir = tempfile::tempdir().unwrap();
                super::$case(&super::sqlite_in(&dir).await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() {
                let db = super::TestDatabase::create().await;
                super::$case(&db.backend().await).await;
            })*
        }
        mod mysql {
            $(#[tokio::test]
            async fn $case() {
                let db = super::TestMysqlDatabase::create().await;
                super::$case(&db.backend().await).await;
            })*
        }
    };
}

/// `insert_many` writes every record (version 1, families kept), replaces expired ones, and
/// answers a live id with `Conflict`.
async fn insert_many_writes_every_record(b: &dyn Backend) {
    b.insert(Kind::Grant, "expired", &record("old", None, NOW - 1), NOW).await.unwrap();
    let mut refresh = record(r#"{"t":"ålice"}"#, Some("g1"), NOW + 90);
    refresh.version = 7;
    let grant = record("null", Some("session"), NOW + 60);
    let replaced = record("new", None, NOW + 60);
    let batch =
        [(Kind::Grant, "g1", &grant), (Kind::RefreshToken, "rt1", &refresh), (Kind::Grant, "expired", &replaced)];
    b.insert_many(&batch, NOW).await.unwrap();
    assert_eq!(b.get(Kind::Grant, "g1", NOW).await.unwrap(), Some(grant.clone()));
    assert_eq!(
        b.get(Kind::RefreshToken, "rt1", NOW).await.unwrap(),
        Some(record(r#"{"t":"ålice"}"#, Some("g1"), NOW + 90))
    );
    assert_eq!(b.get(Kind::Grant, "expired", NOW).await.unwrap(), Some(replaced));
    assert_eq!(b.list_family(Kind::RefreshToken, "g1", NOW).await.unwrap(), vec!["rt1".to_string()]);
    let taken = [(Kind::Session, "fresh", &grant), (Kind::Grant, "g1", &grant)];
    let err = b.insert_many(&taken, NOW).await.unwrap_err();
    assert!(matches!(err, StorageError::Conflict { .. }), "{err:?}");
    b.insert_many(&[], NOW).await.unwrap();
}

/// `insert_and_update` (a refresh rotation) writes both records or neither: a stale version
/// writes nothing, a taken id swaps nothing.
async fn insert_and_update_is_one_change(b: &dyn Backend) {
    let k = Kind::RefreshToken;
    b.insert(k, "parent", &record("p1", Some("g"), NOW + 60), NOW).await.unwrap();
    let swap = |version, data| Swap { kind: k, id: "parent", expected_version: version, data, expires_at: NOW + 60 };
    let child = record(r#"{"child":"ålice"}"#, Some("g"), NOW + 90);
    assert!(b.insert_and_update(k, "child", &child, swap(1, "p2"), NOW).await.unwrap());
    assert_eq!(b.get(k, "child", NOW).await.unwrap(), Some(child.clone()));
    let parent = b.get(k, "parent", NOW).await.unwrap().unwrap();
    assert_eq!((parent.version, parent.data.as_str()), (2, "p2"));

    // A stale version: false, and the new record is not kept.
    assert!(!b.insert_and_update(k, "loser", &child, swap(1, "stale"), NOW).await.unwrap());
    assert_eq!(b.get(k, "loser", NOW).await.unwrap(), None, "a lost swap keeps no new record");
    assert_eq!(b.get(k, "parent", NOW).await.unwrap(), Some(parent.clone()));

    // A live id already taken: a conflict, and the swap did not happen.
    let err = b.insert_and_update(k, "child", &child, swap(2, "p3"), NOW).await.unwrap_err();
    assert!(matches!(err, StorageError::Conflict { kind: "refresh_token" }), "{err:?}");
    assert_eq!(b.get(k, "parent", NOW).await.unwrap(), Some(parent), "a conflict swaps nothing");
    assert_eq!(b.list_family(k, "g", NOW).await.unwrap(), vec!["child".to_string(), "parent".to_string()]);
}

/// Racing rotations of one parent: one wins, and only its new record exists.
async fn concurrent_rotations_have_one_winner(b: &dyn Backend) {
    let k = Kind::RefreshToken;
    b.insert(k, "parent", &record("p1", Some("g"), NOW + 60), NOW).await.unwrap();
    let rotations = (0..RACERS).map(|i| async move {
        let id = format!("child-{i}");
        let swap = Swap { kind: k, id: "parent", expected_version: 1, data: &id, expires_at: NOW + 60 };
        let won = b.insert_and_update(k, &id, &record("c", Some("g"), NOW + 60), swap, NOW).await.unwrap();
        won.then_some(id)
    });
    let winners: Vec<String> = join_all(rotations).await.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    let mut family = b.list_family(k, "g", NOW).await.unwrap();
    family.retain(|id| id != "parent");
    assert_eq!(family, winners, "only the winner's new record is kept");
    assert_eq!(b.get(k, "parent", NOW).await.unwrap().unwrap().data, winners[0]);
}

conformance!(
    insert_and_update_is_one_change,
    concurrent_rotations_have_one_winner,
    insert_get_conflict,
    concurrent_inserts_have_one_winner,
    expired_records_are_invisible_and_replaceable,
    update_is_compare_and_swap,
    concurrent_updates_have_one_winner,
    take_returns_once,
    concurrent_takes_have_one_winner,
    delete_and_families,
    collect_garbage_removes_only_expired,
    garbage_collection_goes_on_past_one_batch,
    ping,
    insert_many_writes_every_record,
);

/// A flood of 100,000 abandoned auth requests (written straight into the table) is collected by
/// one run, in bounded batches, while logins go on: a storage read during the collection
/// answers. The run's time is printed, not asserted.
#[tokio::test]
async fn a_flood_of_abandoned_auth_requests_is_collected_in_one_run() {
    use sqlx::Executor as _;
    let db = TestDatabase::create().await;
    let backend = std::sync::Arc::new(db.backend().await);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url()).await.unwrap();
    conn.execute(
        format!(
            "INSERT INTO portcullis_objects (kind, id, family, data, version, expires_at) \
             SELECT 'auth_request', 'flood-' || n, NULL, '{{}}', 1, {} FROM generate_series(1, 100000) AS n",
            NOW - 1
        )
        .as_str(),
    )
    .await
    .unwrap();
    backend.insert(Kind::AuthRequest, "live", &record("{}", None, NOW + 600), NOW).await.unwrap();
    let started = std::time::Instant::now();
    let gc = tokio::spawn({
        let backend = backend.clone();
        async move { backend.collect_garbage(NOW).await.unwrap() }
    });
    // Reads interleave with the batches.
    let mut reads = 0;
    while !gc.is_finished() {
        assert!(backend.get(Kind::AuthRequest, "live", NOW).await.unwrap().is_some());
        reads += 1;
    }
    let collected = gc.await.unwrap();
    assert_eq!(collected, 100_000);
    eprintln!("collected 100,000 rows in {:?}; {reads} reads answered meanwhile", started.elapsed());
    assert!(backend.get(Kind::AuthRequest, "live", NOW).await.unwrap().is_some());
}

// ---------------------------------------------------------------------------------------------
// Replicas: two backends (two connection pools) on one database.
// ---------------------------------------------------------------------------------------------

/// A record inserted through one replica is seen and taken through the other, once; concurrent
/// takes and compare-and-swaps spread over both replicas have exactly one winner.
async fn replicas_share_records(a: &dyn Backend, b: &dyn Backend) {
    let k = Kind::AuthCode;
    a.insert(k, "code", &record("payload", None, NOW + 60), NOW).await.unwrap();
    assert!(matches!(b.insert(k, "code", &record("x", None, NOW + 60), NOW).await, Err(StorageError::Conflict { .. })));
    assert_eq!(b.take(k, "code", NOW).await.unwrap(), Some(record("payload", None, NOW + 60)));
    assert_eq!(a.take(k, "code", NOW).await.unwrap(), None);

    let replicas = [a, b];
    a.insert(k, "raced", &record("payload", None, NOW + 60), NOW).await.unwrap();
    let takes = (0..RACERS).map(|i| replicas[i % 2].take(k, "raced", NOW));
    let taken = join_all(takes).await.into_iter().filter_map(Result::unwrap).count();
    assert_eq!(taken, 1);

    b.insert(Kind::Keys, "signing", &record("v1", None, NOW + 60), NOW).await.unwrap();
    let updates = (0..RACERS).map(|i| async move {
        let data = format!("replica-{}-writer-{i}", i % 2);
        replicas[i % 2].update(Kind::Keys, "signing", 1, &data, NOW + 60, NOW).await.unwrap().then_some(data)
    });
    let winners: Vec<String> = join_all(updates).await.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    for replica in replicas {
        let got = replica.get(Kind::Keys, "signing", NOW).await.unwrap().unwrap();
        assert_eq!((got.version, Some(got.data)), (2, winners.first().cloned()));
    }
}

#[tokio::test]
async fn postgres_replicas_share_records() {
    let db = TestDatabase::create().await;
    let (a, b) = (db.backend().await, db.backend().await);
    replicas_share_records(&a, &b).await;
}

#[tokio::test]
async fn postgres_replicas_migrate_at_once() {
    let db = TestDatabase::create().await;
    let url = db.url();
    let started = join_all((0..4).map(|_| SqlBackend::postgres(&url))).await;
    let replicas: Vec<SqlBackend> = started.into_iter().map(Result::unwrap).collect();
    for replica in &replicas {
        replica.ping().await.unwrap();
    }
    // And a later start finds the schema in place.
    replicas_share_records(&replicas[0], &db.backend().await).await;
}

#[tokio::test]
async fn mysql_replicas_share_records() {
    let db = TestMysqlDatabase::create().await;
    let (a, b) = (db.backend().await, db.backend().await);
    replicas_share_records(&a, &b).await;
}

#[tokio::test]
async fn mysql_replicas_migrate_at_once() {
    let db = TestMysqlDatabase::create().await;
    let url = db.url();
    let started = join_all((0..4).map(|_| SqlBackend::connect(&url))).await;
    let replicas: Vec<SqlBackend> = started.into_iter().map(Result::unwrap).collect();
    for replica in &replicas {
        replica.ping().await.unwrap();
    }
    replicas_share_records(&replicas[0], &db.backend().await).await;
}

/// Ids are compared byte for byte: no collation folds case or ignores trailing spaces, and an
/// id longer than its column is refused, not truncated.
#[tokio::test]
async fn mysql_ids_are_exact() {
    let db = TestMysqlDatabase::create().await;
    let b = db.backend().await;
    let k = Kind::AuthCode;
    b.insert(k, "Token", &record("upper", Some("Fam"), NOW + 60), NOW).await.unwrap();
    b.insert(k, "token", &record("lower", Some("fam"), NOW + 60), NOW).await.unwrap();
    assert_eq!(b.get(k, "token ", NOW).await.unwrap(), None);
    assert_eq!(b.get(k, "Token", NOW).await.unwrap().unwrap().data, "upper");
    assert_eq!(b.list_family(k, "fam", NOW).await.unwrap(), vec!["token".to_owned()]);
    let long = "x".repeat(600);
    assert!(b.insert(k, &long, &record("{}", None, NOW + 60), NOW).await.is_err());
    assert_eq!(b.get(k, &long[..512], NOW).await.unwrap(), None);
}

/// `storage.type: mysql` with Dex's keys reaches the database (plain TCP: `ssl.mode: "false"`,
/// the test server has no TLS), and the default `ssl.mode` (Dex's `true`) insists on TLS.
#[tokio::test]
async fn mysql_config_block_opens_the_database() {
    let db = TestMysqlDatabase::create().await;
    let host = portcullis_tests::host_port(&portcullis_tests::mysql_base());
    let load = |ssl: &str| {
        let yaml = format!(
            "issuer: http://127.0.0.1:5556/dex\nstorage:\n  type: mysql\n  config:\n    host: {host}\n    \
             user: root\n    database: {}\n    connectionTimeout: 5\n    maxOpenConns: 4\n{ssl}",
            db.name
        );
        portcullis::config::Config::from_yaml(std::path::Path::new("mysql.yaml"), &yaml, &|_| None).unwrap()
    };
    let plain = load("    ssl:\n      mode: \"false\"\n");
    let b = portcullis::broker::open_storage(&plain).await.unwrap();
    b.insert(Kind::AuthCode, "c", &record("{}", None, NOW + 60), NOW).await.unwrap();
    assert!(b.get(Kind::AuthCode, "c", NOW).await.unwrap().is_some());
    let err = portcullis::broker::open_storage(&load("")).await.err().unwrap();
    assert!(format!("{err:#}").contains(&format!("MySQL at root@{host}/")), "{err:#}");
}

/// Without `maxOpenConns` a broker opens at most Dex's 5 PostgreSQL connections, however many
/// statements wait for one; with it, that many.
#[tokio::test]
async fn postgres_pool_is_dexs_five_connections_unless_max_open_conns_says() {
    use sqlx::Row as _;
    for (key, want) in [("", 5_i64), ("    maxOpenConns: 7\n", 7)] {
        let db = TestDatabase::create().await;
        let yaml = format!(
            "issuer: http://127.0.0.1:5556/dex\nstorage:\n  type: postgres\n  config:\n    url: {}?sslmode=disable\n{key}",
            db.url()
        );
        let config = portcullis::config::Config::from_yaml(std::path::Path::new("pg.yaml"), &yaml, &|_| None).unwrap();
        let b = portcullis::broker::open_storage(&config).await.unwrap();
        // Forty reads at once: every one waits for a connection, so the pool opens all it may.
        let reads = join_all((0..40).map(|i| {
            let b = &b;
            async move { b.get(Kind::AuthCode, &format!("c{i}"), NOW).await }
        }))
        .await;
        assert!(reads.iter().all(|r| matches!(r, Ok(None))), "{reads:?}");
        let mut admin = portcullis_tests::postgres_admin().await;
        let open: i64 = sqlx::query("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
            .bind(&db.name)
            .fetch_one(&mut admin)
            .await
            .unwrap()
            .get(0);
        assert_eq!(open, want, "connections with {key:?}");
    }
}

#[tokio::test]
async fn unreachable_mysql_names_the_server_without_its_password() {
    let err = SqlBackend::connect("mysql://portcullis:hunter2@127.0.0.1:1/portcullis").await.unwrap_err().to_string();
    assert!(err.starts_with("storage unavailable: MySQL at portcullis@127.0.0.1:1/portcullis"), "{err}");
    assert!(err.contains("is MySQL / MariaDB running"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn sqlite_replicas_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/shared.sqlite");
    let url = format!("sqlite:{}", path.display());
    let (a, b) = futures::join!(SqlBackend::sqlite(&path), SqlBackend::connect(&url));
    replicas_share_records(&a.unwrap(), &b.unwrap()).await;
}

// ---------------------------------------------------------------------------------------------
// What an operator sees when the database is not there.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unreachable_postgres_names_the_url_without_its_password() {
    let err = SqlBackend::connect("postgres://portcullis:hunter2@127.0.0.1:1/portcullis?password=hunter2")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("storage unavailable: PostgreSQL at postgres://portcullis@127.0.0.1:1/portcullis"),
        "{err}"
    );
    assert!(err.contains("is PostgreSQL running"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn unsupported_storage_url_is_refused() {
    let err = SqlBackend::connect("redis://root:hunter2@localhost/db").await.unwrap_err().to_string();
    assert_eq!(
        err,
        "storage unavailable: unsupported storage URL scheme `redis`; \
         use sqlite:PATH, postgres://USER@HOST:PORT/DATABASE or mysql://USER@HOST:PORT/DATABASE"
    );
}

#[tokio::test]
async fn debug_output_holds_no_password() {
    let db = TestDatabase::create().await;
    let url = db.url().replacen("postgres@", "postgres:hunter2@", 1);
    let backend = SqlBackend::postgres(&url).await.unwrap();
    let debug = format!("{backend:?}");
    assert!(debug.contains("PostgreSQL") && !debug.contains("hunter2"), "{debug}");
}

/// The SQLite file holds the signing keys' private PEM: the directory the broker creates is
/// 0700, the database and its -wal/-shm files 0600, whatever the umask; an existing file
/// readable by others is made private (with a warning).
#[tokio::test]
async fn sqlite_files_are_private_to_the_broker() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("created/by/broker/portcullis.sqlite");
    let b = SqlBackend::sqlite(&path).await.unwrap();
    b.insert(Kind::AuthCode, "c", &record("{}", None, NOW + 60), NOW).await.unwrap();
    assert_eq!(mode(&dir.path().join("created")), 0o700, "a directory the broker creates");
    assert_eq!(mode(path.parent().unwrap()), 0o700, "a directory the broker creates");
    for file in ["portcullis.sqlite", "portcullis.sqlite-wal", "portcullis.sqlite-shm"] {
        assert_eq!(mode(&path.with_file_name(file)), 0o600, "{file}");
    }
    b.close().await;

    // A file made world-readable by an older version (or by hand) is fixed on open.
    let existing = dir.path().join("existing.sqlite");
    std::fs::write(&existing, b"").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
    let b = SqlBackend::sqlite(&existing).await.unwrap();
    b.ping().await.unwrap();
    assert_eq!(mode(&existing), 0o600);
    b.close().await;
}

/// SQLite's point statements run on a connection of their own (`storage/sqlite_inline.rs`), the
/// rest on sqlx's pool: each sees what the other wrote, and after `close` both refuse as
/// unavailable.
#[tokio::test]
async fn sqlite_point_statements_and_the_pool_share_one_database_and_close_together() {
    let dir = tempfile::tempdir().unwrap();
    let b = SqlBackend::sqlite(&dir.path().join("shared.sqlite")).await.unwrap();
    // Written inline, listed and deleted through the pool, then read inline again.
    b.insert(Kind::RefreshToken, "t1", &record("{}", Some("g"), NOW + 60), NOW).await.unwrap();
    b.insert_many(&[(Kind::RefreshToken, "t2", &record("{}", Some("g"), NOW + 60))], NOW).await.unwrap();
    let mut ids = b.list_family(Kind::RefreshToken, "g", NOW).await.unwrap();
    ids.sort();
    assert_eq!(ids, ["t1", "t2"]);
    assert_eq!(b.delete_family(Kind::RefreshToken, "g").await.unwrap(), 2);
    assert!(b.get(Kind::RefreshToken, "t1", NOW).await.unwrap().is_none(), "the inline read sees the pool's delete");
    // What the pool's garbage collection removes is gone for the inline path too.
    b.insert(Kind::AuthCode, "c", &record("{}", None, NOW + 1), NOW).await.unwrap();
    assert_eq!(b.collect_garbage(NOW + 2).await.unwrap(), 1);
    assert!(b.take(Kind::AuthCode, "c", NOW).await.unwrap().is_none());
    b.close().await;
    let err = b.get(Kind::AuthCode, "c", NOW).await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    let err = b.insert(Kind::AuthCode, "d", &record("{}", None, NOW + 60), NOW).await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
}

/// TLS to MySQL / MariaDB as Dex configures it, against a throwaway MariaDB serving a test
/// certificate for 127.0.0.1: `ssl.caFile` verifies the server and the session is encrypted; a CA
/// that did not sign the server's certificate is refused; `skip-verify` encrypts without checking.
#[tokio::test]
async fn mysql_tls_verifies_the_server_against_ca_file() {
    use sqlx::{ConnectOptions as _, Connection as _, Row as _};
    let ca = portcullis_tests::slapd::TestCa::new("MariaDB test CA");
    let (cert, key) = ca.server_cert(&["127.0.0.1"]);
    let base = portcullis_tests::dbserver::mariadb_with_tls(&cert, &key);
    let mut admin = sqlx::MySqlConnection::connect(&base).await.unwrap();
    sqlx::Executor::execute(&mut admin, "CREATE DATABASE tls_test").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (trusted, other) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    std::fs::write(&trusted, &ca.cert_pem).unwrap();
    std::fs::write(&other, portcullis_tests::slapd::TestCa::new("another CA").cert_pem).unwrap();
    let host = portcullis_tests::host_port(&base);
    let load = |ssl: String| {
        let yaml = format!(
            "issuer: http://127.0.0.1:5556/dex\nstorage:\n  type: mysql\n  config:\n    host: {host}\n    user: root\n    \
             database: tls_test\n    connectionTimeout: 5\n    ssl:\n{ssl}"
        );
        portcullis::config::Config::from_yaml(std::path::Path::new("mysql.yaml"), &yaml, &|_| None).unwrap()
    };
    let verified = load(format!("      caFile: {}\n", trusted.display()));
    let b = portcullis::broker::open_storage(&verified).await.unwrap();
    b.insert(Kind::AuthCode, "c", &record("{}", None, NOW + 60), NOW).await.unwrap();
    assert!(b.get(Kind::AuthCode, "c", NOW).await.unwrap().is_some());
    let portcullis::config::StorageConfig::Mysql(m) = &verified.storage else { panic!("mysql storage") };
    let mut conn = portcullis::broker::mysql_options(m).connect().await.unwrap();
    let row = sqlx::query("SHOW SESSION STATUS LIKE 'Ssl_cipher'").fetch_one(&mut conn).await.unwrap();
    assert!(!row.get::<String, _>(1).is_empty(), "the session is encrypted");

    let wrong = load(format!("      caFile: {}\n", other.display()));
    let Err(err) = portcullis::broker::open_storage(&wrong).await else { panic!("a CA that did not sign the server") };
    assert!(format!("{err:#}").contains(&format!("MySQL at root@{host}/")), "{err:#}");
    // The default (Dex's `ssl.mode: true`) verifies against the system's roots, which do not hold the test CA.
    assert!(portcullis::broker::open_storage(&load("      mode: \"true\"\n".into())).await.is_err());
    let unverified = load("      mode: skip-verify\n".into());
    assert!(portcullis::broker::open_storage(&unverified).await.is_ok(), "skip-verify encrypts without checking");
}

//! Databases for tests: a SQLite file in a temporary folder, or a fresh PostgreSQL database.
//!
//! PostgreSQL tests need `FAPIAO_TEST_POSTGRES_URL`: a URL of a role allowed to create databases
//! (`scripts/test` sets it, starting or installing PostgreSQL first). Each test gets its own
//! database, dropped when the test ends, so tests run in parallel without seeing each other.

use sqlx::Connection;
use sqlx::Executor;
use sqlx::postgres::PgConnection;

/// The variable naming the PostgreSQL server tests use.
pub const POSTGRES_URL_VAR: &str = "FAPIAO_TEST_POSTGRES_URL";

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// `sqlite` or `postgres`, for messages.
    pub backend: &'static str,
    /// What the service's `database.url` should be.
    pub url: String,
    /// The folder holding the SQLite file (and anything else the test wants to keep there).
    pub dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

/// A SQLite database in a new temporary folder.
pub fn sqlite() -> TestDatabase {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let url = format!("sqlite://{}/fapiao.db?mode=rwc", dir.path().display());
    TestDatabase {
        backend: "sqlite",
        url,
        dir,
        postgres: None,
    }
}

/// A new, empty PostgreSQL database on the server of `FAPIAO_TEST_POSTGRES_URL`.
pub async fn postgres() -> TestDatabase {
    let admin = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
        panic!("{POSTGRES_URL_VAR} is not set: run the tests with scripts/test, which starts PostgreSQL and sets it")
    });
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("randomness");
    let name = format!(
        "fapiao_test_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}: {e}"));
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("creating a test database");
    let _ = conn.close().await;
    let url = database_url(&admin, &name);
    TestDatabase {
        backend: "postgres",
        url,
        dir: tempfile::tempdir().expect("a temporary folder"),
        postgres: Some((admin, name)),
    }
}

/// `admin` with its database path replaced by `name`.
fn database_url(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop from a thread with its own runtime: Drop cannot await, and the test's runtime may
        // be shutting down.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = conn
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// The service's store on the database at `url` (migrated by whoever created it).
pub async fn open_store(url: &str) -> fapiao_services::store::Store {
    fapiao_services::store::Store::connect(&fapiao_services::store::StoreOptions {
        url: url.to_owned(),
        max_connections: 4,
        acquire_timeout: std::time::Duration::from_secs(10),
        sqlite_cache_mib: fapiao_services::store::StoreOptions::SQLITE_CACHE_MIB,
    })
    .await
    .expect("connecting to the test database")
}

/// A plain pool on the database at `url`, for planting rows with SQL.
pub async fn raw_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url)
        .await
        .expect("connecting to the test database")
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn the_database_name_replaces_the_admin_database() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            database_url("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(database_url("postgres://h", "t3"), "postgres://h/t3");
    }
}

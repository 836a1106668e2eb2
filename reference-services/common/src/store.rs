//! A Redis connection that a service can hold before Redis is up.
//!
//! Services start even when Redis is down (the gateway must keep serving
//! bearer requests); the first command connects, and a dead Redis answers
//! fast with an error instead of hanging the request.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult};
use tokio::sync::OnceCell;

/// How long one connection attempt to Redis may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long one Redis command may take before the request fails with 503.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Store {
    client: redis::Client,
    url: String,
    conn: OnceCell<ConnectionManager>,
}

impl Store {
    /// Parses `url` (as in `REDIS_URL`); connects later, on first use.
    pub fn new(url: &str) -> Result<Self, crate::config::ConfigError> {
        let client = redis::Client::open(url)
            .map_err(|e| crate::config::ConfigError::new("REDIS_URL", url, format!("a redis:// URL ({e})")))?;
        Ok(Self {
            client,
            url: url.to_owned(),
            conn: OnceCell::new(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// A multiplexed connection that reconnects by itself after an outage.
    pub async fn conn(&self) -> RedisResult<ConnectionManager> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(200));
                ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await?;
        Ok(conn.clone())
    }

    /// Runs one command. If it fails because the connection was lost (Redis
    /// restarted), it runs once more on the connection the manager has been
    /// re-opening meanwhile, so the first request after an outage succeeds.
    pub async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        let first = cmd.query_async(&mut self.conn().await?).await;
        match first {
            Err(e) if worth_retrying(&e) => cmd.query_async(&mut self.conn().await?).await,
            other => other,
        }
    }

    /// [`Store::run`] for a pipeline.
    pub async fn run_pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> RedisResult<T> {
        let first = pipe.query_async(&mut self.conn().await?).await;
        match first {
            Err(e) if worth_retrying(&e) => pipe.query_async(&mut self.conn().await?).await,
            other => other,
        }
    }

    /// `PING`, for readiness.
    pub async fn ping(&self) -> RedisResult<()> {
        self.run::<String>(&redis::cmd("PING")).await.map(drop)
    }
}

/// A lost connection is worth one more try; a refused one (Redis is down) is not.
fn worth_retrying(e: &redis::RedisError) -> bool {
    (e.is_io_error() || e.is_connection_dropped()) && !e.is_connection_refusal()
}

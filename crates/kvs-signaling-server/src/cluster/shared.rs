//! The connections to the primary of the moment: [`Redis`], shared by every command, and
//! [`Dedicated`], a connection of its own; both give way when the primary moves (Sentinel).

use std::sync::{Arc, RwLock};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};

use super::connection::Connector;

/// The shared connection every command goes through (cheap to clone): redis-rs's connection
/// manager for the primary of the moment, which reconnects by itself; when the connector's
/// primary moves (Sentinel), a new manager for the new one.
#[derive(Clone)]
pub(crate) struct Redis(Arc<Shared>);

struct Shared {
    connector: Connector,
    config: ConnectionManagerConfig,
    current: RwLock<Current>,
    db: i64,
}

#[derive(Clone)]
struct Current {
    /// The generation of the connector's primary the manager connects to.
    generation: u64,
    manager: ConnectionManager,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("where", &self.0.connector.where_())
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// The shared connection, connected to the connector's primary now.
    pub(super) async fn connect(
        connector: Connector,
        config: ConnectionManagerConfig,
    ) -> redis::RedisResult<Self> {
        let primary = connector.current()?;
        let db = primary.client.get_connection_info().redis_settings().db();
        let manager = primary
            .client
            .get_connection_manager_with_config(config.clone())
            .await?;
        Ok(Self(Arc::new(Shared {
            connector,
            config,
            current: RwLock::new(Current {
                generation: primary.generation,
                manager,
            }),
            db,
        })))
    }

    /// The manager for the primary of the moment: a new one when the primary moved.
    fn manager(&self) -> redis::RedisResult<ConnectionManager> {
        let generation = self.0.connector.generation();
        {
            let current = self
                .0
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if current.generation == generation {
                return Ok(current.manager.clone());
            }
        }
        let primary = self.0.connector.current()?;
        let mut current = self
            .0
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.generation != primary.generation {
            *current = Current {
                generation: primary.generation,
                manager: ConnectionManager::new_lazy_with_config(
                    primary.client,
                    self.0.config.clone(),
                )?,
            };
        }
        Ok(current.manager.clone())
    }
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            let result = match self.manager() {
                Ok(mut manager) => manager.req_packed_command(cmd).await,
                Err(err) => Err(err),
            };
            if let Err(err) = &result {
                self.0.connector.lost(err);
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            let result = match self.manager() {
                Ok(mut manager) => manager.req_packed_commands(pipeline, offset, count).await,
                Err(err) => Err(err),
            };
            if let Err(err) = &result {
                self.0.connector.lost(err);
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.0.db
    }
}

/// A connection of its own to the primary it was made for: once the primary moves, its
/// commands fail (an I/O error), so that its user connects again, to the new one.
pub(crate) struct Dedicated {
    pub(super) conn: redis::aio::MultiplexedConnection,
    pub(super) generation: u64,
    pub(super) connector: Connector,
}

impl std::fmt::Debug for Dedicated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedicated")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Dedicated {
    fn moved(&self) -> Option<redis::RedisError> {
        (self.connector.generation() != self.generation).then(|| {
            redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "this connection is to a former primary (Sentinel named another); connect again",
            ))
        })
    }
}

impl ConnectionLike for Dedicated {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            if let Some(moved) = self.moved() {
                return Err(moved);
            }
            let result = self.conn.req_packed_command(cmd).await;
            if let Err(err) = &result {
                self.connector.lost(err);
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            if let Some(moved) = self.moved() {
                return Err(moved);
            }
            let result = self.conn.req_packed_commands(pipeline, offset, count).await;
            if let Err(err) = &result {
                self.connector.lost(err);
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

//! A self-hostable KVS WebRTC signaling server.
//!
//! One listener serves the control plane (the channel operations of the Kinesis Video API, at
//! the paths and with the bodies of the real service), the HTTPS data plane
//! (GetIceServerConfig, SendAlexaOfferToMaster) and the WebSocket connect of masters and
//! viewers, with SigV4 verification of every call. Channels live in a `Registry`, live
//! connections in a `Hub` driven by a shard task; both come from `kvs-signaling-core`.
//!
//! ```no_run
//! use kvs_ice_rest::{Credentials, TurnConfig};
//! use kvs_signaling_proto::{IceServerTtl, IceUri};
//! use kvs_signaling_server::{Server, ServerConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let ice = TurnConfig::new(vec![], vec![IceUri::new("stun:127.0.0.1:3478")?], vec![], IceServerTtl::default())?;
//! let config = ServerConfig::new(
//!     "127.0.0.1:8080".parse()?,
//!     vec![Credentials::new("AKIDEXAMPLE", "secret")],
//!     ice,
//! );
//! let server = Server::start(config).await?;
//! println!("listening on {}", server.public_url());
//! # Ok(())
//! # }
//! ```
//!
//! With a data directory, channels and their tags are kept in a redb database there and
//! survive restarts; without one they live in memory.
//!
//! With [`ServerConfig::tls`], the listener speaks TLS; [`dev_certificate`] makes a local
//! development CA and certificate for `serve`'s default.
//!
//! `kvs-signaling serve --config FILE` reads a TOML [`FileConfig`]; access keys may be limited
//! to channels and roles with a [`Scope`].

mod accept;
mod access;
mod app;
mod channels;
mod cluster;
mod config;
mod config_file;
mod connect;
mod console;
mod control;
mod cors;
mod deadline;
mod http;
mod store;
mod tls;

pub use access::{Action, Grant, Scope};
pub use app::{Server, StartError};
pub use cluster::{ClusterConfig, ClusterError};
pub use config::{AuthMode, IndicationPolicy, ServerConfig};
pub use config_file::{
    ConsoleSection, CorsSection, CredentialEntry, FileConfig, IceSection, LimitsSection,
    RedisSection, TlsSection,
};
pub use console::ConsoleConfig;
pub use cors::{ALLOW_HEADERS, ALLOW_METHODS, AllowedOrigins, CorsConfig, EXPOSE_HEADERS};
pub use store::StoreError;
pub use tls::{DevCertificate, TlsError, TlsFiles, dev_certificate};

#[cfg(test)]
mod tests;

/// A configuration for unit tests outside `tests`.
#[cfg(test)]
mod tests_support {
    pub(crate) fn config() -> crate::ServerConfig {
        let ice = kvs_ice_rest::TurnConfig::new(
            vec![],
            vec![kvs_signaling_proto::IceUri::new("stun:127.0.0.1:3478").unwrap()],
            vec![],
            kvs_signaling_proto::IceServerTtl::default(),
        )
        .unwrap();
        crate::ServerConfig::new("127.0.0.1:0".parse().unwrap(), vec![], ice)
    }
}

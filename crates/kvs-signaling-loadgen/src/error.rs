//! Why a run could not take place at all. Failures of single connections or messages are not
//! errors: they are counted in the [`Report`](crate::Report).

/// A run could not start or set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A setting is out of range or inconsistent.
    #[error("{name}: {reason}")]
    Config {
        /// The setting, as the command line spells it.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The endpoint cannot be used.
    #[error("endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The control plane refused or failed the setup (creating channels, reading their ARNs,
    /// asking for the WebSocket endpoint).
    #[error("setup: {reason}")]
    Setup {
        /// Why.
        reason: String,
    },
}

impl LoadError {
    pub(crate) fn config(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            name,
            reason: reason.into(),
        }
    }
}

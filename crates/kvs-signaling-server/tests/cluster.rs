//! Cluster mode (the project's `CLUSTER.md`) with real parts: a `redis-server` started on a
//! free port, `kvs-signaling serve --cluster` processes on 127.0.0.1, 127.0.0.2 and
//! 127.0.0.3, and WebSocket clients connected to chosen nodes, or the official JS SDK through
//! HAProxy balancing two nodes. Every test is bounded in time and stays on loopback.
//! `redis-server`, HAProxy, Node and the SDK come from `scripts/install-test-deps.sh`; without
//! them the tests fail, they do not skip.

// Marks the helpers as test code, for clippy's `allow-*-in-tests`.
#![cfg(test)]

mod common;

mod cluster {
    mod balanced;
    mod control;
    mod failures;
    pub(crate) mod harness;
    mod moving;
    mod operations;
    mod routing;
}

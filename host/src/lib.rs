//! The `vigil` host as a library: WIT bindings and the sandboxed mitigation plugin runtime.

pub mod alerts;
pub mod api;
pub mod bench;
pub mod bench_api;
pub mod bench_fleet;
pub mod bench_mqtt;
pub mod bench_plugins;
pub mod bindings;
pub mod demo;
pub mod engine;
pub mod ids;
pub mod iot;
pub mod journal;
pub mod mitigate;
pub mod mqtt;
pub mod nab;
pub mod output;
pub mod plugin_cli;
pub mod plugins;
pub mod replay;
pub mod serve;
pub mod service;
pub mod sim;
pub mod store;
pub mod tasks;

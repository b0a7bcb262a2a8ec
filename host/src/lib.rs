//! The `vigil` host as a library: WIT bindings and the sandboxed mitigation plugin runtime.

pub mod bench;
pub mod bindings;
pub mod demo;
pub mod engine;
pub mod ids;
pub mod mitigate;
pub mod nab;
pub mod output;
pub mod plugins;
pub mod replay;
pub mod serve;
pub mod sim;

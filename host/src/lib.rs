//! The `vigil` host as a library: WIT bindings and the sandboxed mitigation plugin runtime.

pub mod bench;
pub mod bindings;
pub mod demo;
pub mod engine;
pub mod ids;
pub mod output;
pub mod mitigate;
pub mod sim;
pub mod plugins;
pub mod replay;

//! Policy runtime: loads WebAssembly policy components and calls them in a sandbox.

pub mod bindings;

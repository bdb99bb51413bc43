//! Helpers shared by the agent's integration tests (each test file uses a subset).
#![allow(dead_code)]

pub mod alloc;
pub mod captures;
pub mod tshark;

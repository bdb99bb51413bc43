//! The engine in memory on a virtual clock (filled in below).

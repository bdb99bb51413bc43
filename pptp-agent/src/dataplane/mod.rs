//! The data plane: the embedded BPF programs, their maps, and (later) the fallback path.

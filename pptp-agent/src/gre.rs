//! Enhanced GRE (RFC 2637 §4.1): codec and receive-sequence window.

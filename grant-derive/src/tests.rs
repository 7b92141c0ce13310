//! Unit tests of the expansion and the error messages.

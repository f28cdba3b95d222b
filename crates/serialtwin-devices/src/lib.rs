//! Device models for serialtwin.

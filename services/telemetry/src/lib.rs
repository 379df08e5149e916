//! Logs, traces and metrics for every ferrite service.

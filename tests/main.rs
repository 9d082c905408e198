//! Integration tests: drive the real binary against fixture files, the way a
//! user would. One test binary (`autotests = false`), one module per area.

mod asl;
mod cache;
mod check;
mod cli_edges;
mod cloud_logs;
mod common;
mod editors;
mod examples;
mod fleet;
mod hostile;
mod inject;
mod layers;
mod legacy;
mod legacy_fidelity;
mod legacy_run;
mod lsp;
mod redteam;
mod roundtrip;
mod run;
mod run_docker;
mod run_hostile;
mod runner_ux;
mod sfn;
mod sfn_same;
mod support;
mod worker;

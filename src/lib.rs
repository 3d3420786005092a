//! callscreen screens Microsoft Graph incoming-call invites against declarative rules.
//!
//! The pipeline: a `commsNotifications` POST arrives at the [`server`]; [`notification`]
//! turns each invite in it into [`facts::Facts`]; the current [`rules::RuleSet`] (compiled
//! from TOML, swapped in by [`reload`]) evaluates them to a [`rules::Decision`]; a reject in
//! enforce mode goes to Graph through [`graph`]; every decision is written by [`audit`].

pub mod audit;
pub mod authoring;
pub mod config;
pub mod daemon;
pub mod facts;
pub mod gateway;
pub mod graph;
pub mod inbound;
pub mod log_writer;
pub mod metrics;
pub mod notification;
pub mod reload;
pub mod rules;
pub mod screen;
pub mod server;
pub mod status;
pub mod tls;

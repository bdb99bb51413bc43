//! Sessions at run time: the tokio tasks that tie a PPTP call, its PPP link and the
//! data plane together, for the concentrator ([`server`]) and the client ([`client`]).
//!
//! - [`hub`]: the one task that runs every PPP link and the agent's data path.
//! - [`gre_socket`], [`tun`]: the raw GRE socket and the TUN device it uses.
//! - [`rtnl`]: routes and addresses over rtnetlink, without blocking the hub.
//! - [`host_route`]: the route to a demand-dial interface's PPTP server, kept off the tunnel.
//! - [`deadlines`]: the hub's timer set, one deadline per session.
//! - [`pool`]: the concentrator's address pool.
//! - [`load`]: the load generator (`pptp-agent load-test`).
//! - [`aaa`]: what the hub keeps per session for RADIUS.
//! - [`routers`]: demand-dial interfaces from the configuration, and their dialer.
//! - [`routes`]: networks behind a session (a router), routed to it while it is up.

pub mod aaa;
pub mod client;
pub mod deadlines;
pub mod gre_socket;
pub mod host_route;
pub mod hub;
pub mod load;
pub mod pool;
pub mod routers;
pub mod routes;
pub mod rtnl;
pub mod server;
pub mod tun;

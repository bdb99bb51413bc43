//! The tokio shell around the [`crate::engine`]: it owns the sockets and devices,
//! runs the tasks and moves bytes; it decides nothing.
//!
//! - [`hub`]: the one task that runs the engine: GRE socket, TUN devices, commands,
//!   RADIUS exchanges, the engine's actions.
//! - [`server`]: the concentrator's control side (TCP 1723), a task per connection.
//! - [`client`]: the calling side: place a call, dial (`pptp-agent dial`);
//!   [`call_orders`]: the calls one of our control connections is to place.
//! - [`load`]: the load generator (`pptp-agent load-test`).
//! - [`routers`]: demand-dial interfaces from the configuration, and their dialer.
//! - [`gre_socket`], [`tun`], [`network`]: the raw GRE socket, TUN devices, and the
//!   engine's routes and addresses on them.
//! - [`rtnl`]: routes and addresses over rtnetlink, without blocking the hub.
//! - [`host_route`]: the route to a demand-dial interface's PPTP server, kept off the tunnel.
//! - [`pool`]: the concentrator's address pool.
//! - [`dae`]: RADIUS Disconnect and CoA requests (RFC 5176) carried out on the hub.

pub mod call_orders;
pub mod client;
pub mod dae;
pub mod gre_socket;
pub mod host_route;
pub mod hub;
pub mod load;
pub mod network;
pub mod pool;
pub mod routers;
pub mod rtnl;
pub mod server;
pub mod tun;

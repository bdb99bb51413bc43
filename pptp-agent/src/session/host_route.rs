//! The host route that keeps a demand-dial interface's own PPTP traffic off the
//! tunnel (KB Q177335, step 5): the route to the PPTP server is pinned, as a /32,
//! to the path the kernel uses for it before the interface's routes exist. Without
//! it, a route through the tunnel that covers the server (a default route, or the
//! server's network) would send the control connection and GRE into the tunnel
//! itself. Removed when dropped.

use std::{net::Ipv4Addr, process::Command};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use super::tun::ip;

/// A pinned host route; removed on drop.
#[derive(Debug)]
pub struct HostRoute {
    destination: String,
    via: Vec<String>,
}

/// One entry of `ip -j route get`.
#[derive(Debug, Deserialize, PartialEq, Eq)]
struct RouteGet {
    #[serde(default)]
    gateway: Option<Ipv4Addr>,
    dev: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// How the kernel reaches `dst` now: (gateway, device), or `None` if `dst` is one
/// of our own addresses.
fn parse_route_get(json: &[u8]) -> anyhow::Result<Option<(Option<Ipv4Addr>, String)>> {
    let routes: Vec<RouteGet> =
        serde_json::from_slice(json).context("reading `ip -j route get`")?;
    let route = routes
        .into_iter()
        .next()
        .context("`ip route get` said nothing")?;
    if route.kind.as_deref() == Some("local") || route.dev == "lo" {
        return Ok(None);
    }
    Ok(Some((route.gateway, route.dev)))
}

impl HostRoute {
    /// Pins `dst` to its current path; `None` if `dst` is local.
    pub fn pin(dst: Ipv4Addr) -> anyhow::Result<Option<Self>> {
        let out = Command::new("ip")
            .args(["-j", "-4", "route", "get", &dst.to_string()])
            .output()
            .context("running `ip` (iproute2 is needed for routes)")?;
        if !out.status.success() {
            bail!(
                "no route to the PPTP server {dst}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let Some((gateway, dev)) = parse_route_get(&out.stdout)? else {
            return Ok(None);
        };
        let mut via = Vec::new();
        if let Some(gw) = gateway {
            via.extend(["via".to_owned(), gw.to_string()]);
        }
        via.extend(["dev".to_owned(), dev]);
        let route = Self {
            destination: format!("{dst}/32"),
            via,
        };
        let mut args = vec!["route", "replace", route.destination.as_str()];
        args.extend(route.via.iter().map(String::as_str));
        ip(&args)?;
        tracing::info!(server = %dst, via = route.via.join(" "), "host route to the PPTP server");
        Ok(Some(route))
    }
}

impl Drop for HostRoute {
    fn drop(&mut self) {
        let mut args = vec!["route", "del", self.destination.as_str()];
        args.extend(self.via.iter().map(String::as_str));
        let _ = ip(&args);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gateway_and_device() {
        let via = br#"[{"dst":"203.0.113.7","gateway":"198.51.100.254","dev":"eth0","prefsrc":"198.51.100.2","flags":[],"uid":0,"cache":[]}]"#;
        assert_eq!(
            parse_route_get(via).unwrap(),
            Some((Some("198.51.100.254".parse().unwrap()), "eth0".into()))
        );
        let on_link = br#"[{"dst":"198.51.100.9","dev":"eth0","prefsrc":"198.51.100.2","flags":[],"uid":0,"cache":[]}]"#;
        assert_eq!(
            parse_route_get(on_link).unwrap(),
            Some((None, "eth0".into()))
        );
        let local = br#"[{"type":"local","dst":"198.51.100.2","dev":"lo","prefsrc":"198.51.100.2","flags":[],"uid":0,"cache":["<local>"]}]"#;
        assert_eq!(parse_route_get(local).unwrap(), None);
        assert!(parse_route_get(b"[]").is_err());
        assert!(parse_route_get(b"garbage").is_err());
    }
}

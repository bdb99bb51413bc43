//! `pptp-agent serve`: the concentrator.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use anyhow::{Context as _, bail};
use clap::Args;
use pptp_agent::{
    auth::users::Users as AuthUsers,
    config::{self, Config},
    dataplane::{
        bpffs::PinDir,
        xdp::{XdpDataplane, XdpOptions},
    },
    dhcp::{DhcpInformConfig, DhcpInformResponder, StaticRoute},
    engine::{AaaSettings, Dataplane, Engine, EngineConfig, Mode, RatePolicy},
    guard::{
        GuardStats, Guards,
        fds::{self, FdBudget, Reserve},
        limits::{Limits, LiveLimits},
    },
    ppp::{
        auth::{Secret, SecretSource},
        link::EchoConfig,
    },
    pptp::control::ControlConfig,
    radius::Radius,
    runtime::{
        gre_socket::GreSocket,
        hub::{Devices, Hub, HubParts},
        network::TunNetwork,
        pool::{RangePool, SharedPool},
        routers::{self, DemandDialConfig, LinkDefaults},
        server::{ServerSettings, Shared, serve},
        tun::Tun,
    },
};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{oneshot, watch},
};

use super::{
    agent::{PinArgs, ServeApiArgs},
    options::PolicyArgs,
};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (TOML; `pptp-agent/examples/pptp-agent.toml` documents every
    /// key; check it with `pptp-agent check-config`). With it, interfaces, addresses,
    /// users (chap-secrets), authentication, MPPE and keepalive come from the file,
    /// and the flags that set them are refused. SIGHUP re-reads the secrets.
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with_all = [
        "uplink", "lan", "drop_unknown", "listen", "local_ip", "pool", "dns", "users", "name", "mru", "tun",
        "dhcp_domain", "dhcp_routes",
    ])]
    config: Option<PathBuf>,
    /// Interface facing the PPTP clients: the XDP program decapsulating GRE goes
    /// here. Without it no XDP is used and every session takes the agent's path.
    #[arg(long, value_name = "IFACE")]
    uplink: Option<String>,
    /// Interface facing the LAN: traffic to clients arriving here is encapsulated
    /// in XDP. Without it, return traffic goes through the kernel and the agent.
    #[arg(long, value_name = "IFACE")]
    lan: Option<String>,
    /// Drop GRE of unknown sessions in XDP (the default: every call is installed
    /// before its first GRE packet); `--drop-unknown=false` passes it to the kernel.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    drop_unknown: bool,
    /// Address and port to accept control connections on.
    #[arg(long, default_value = "0.0.0.0:1723")]
    listen: SocketAddr,
    /// Our address inside the tunnels.
    #[arg(long, value_name = "ADDR", required_unless_present = "config")]
    local_ip: Option<Ipv4Addr>,
    /// Client addresses, FIRST-LAST.
    #[arg(long, value_name = "FIRST-LAST", value_parser = parse_range, required_unless_present = "config")]
    pool: Option<(Ipv4Addr, Ipv4Addr)>,
    /// DNS servers handed to clients (at most two).
    #[arg(long, value_name = "ADDR")]
    dns: Vec<Ipv4Addr>,
    /// A user allowed to dial in, NAME:PASSWORD (repeatable).
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = parse_user, required_unless_present = "config")]
    users: Vec<(String, String)>,
    /// Our CHAP name.
    #[arg(long, default_value = "pptp-xdp")]
    name: String,
    /// The MRU we ask for.
    #[arg(long, default_value_t = 1400)]
    mru: u16,
    /// Domain name handed to Windows clients that ask with DHCPINFORM (option 15).
    #[arg(long, value_name = "NAME")]
    dhcp_domain: Option<String>,
    /// A route handed to Windows clients that ask with DHCPINFORM (classless static
    /// routes, options 121 and 249), a.b.c.d/n via the concentrator (repeatable).
    #[arg(long = "dhcp-route", value_name = "PREFIX", value_parser = config::parse_prefix)]
    dhcp_routes: Vec<(Ipv4Addr, u8)>,
    /// Name of the TUN device for sessions handled by the agent.
    #[arg(long, default_value = "pptp0")]
    tun: String,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    pins: PinArgs,
    #[command(flatten)]
    api: ServeApiArgs,
}

fn parse_range(s: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected FIRST-LAST, e.g. 192.0.2.10-192.0.2.250")?;
    let first: Ipv4Addr = a.trim().parse().map_err(|e| format!("{a}: {e}"))?;
    let last: Ipv4Addr = b.trim().parse().map_err(|e| format!("{b}: {e}"))?;
    if first > last {
        return Err(format!("{first} comes after {last}"));
    }
    Ok((first, last))
}

fn parse_user(s: &str) -> Result<(String, String), String> {
    let (name, password) = s.split_once(':').ok_or("expected NAME:PASSWORD")?;
    if name.is_empty() {
        return Err("empty user name".into());
    }
    Ok((name.to_owned(), password.to_owned()))
}

/// Users given on the command line.
struct Users(Vec<(String, String)>);

impl SecretSource for Users {
    fn secret(&self, user: &[u8]) -> Option<Secret> {
        self.0
            .iter()
            .find(|(name, _)| name.as_bytes() == user)
            .map(|(_, password)| Secret::Password(password.clone().into_bytes()))
    }
}

/// Everything `serve` runs with, resolved from the flags or from the config file.
struct Plan {
    listen: Vec<SocketAddr>,
    uplinks: Vec<String>,
    lans: Vec<String>,
    tun: String,
    drop_unknown: bool,
    pins: PinDir,
    instance: String,
    settings: ServerSettings,
    /// What DHCPINFORM answers carry (domain, routes).
    dhcp: DhcpInformConfig,
    /// The loaded configuration and the users it reloads on SIGHUP.
    reload: Option<(Config, AuthUsers)>,
    /// RADIUS, when the configuration has a `[radius]` section.
    radius: Option<Radius>,
    /// Demand-dial interfaces (configuration file only).
    demand_dial: Vec<DemandDialConfig>,
    /// Rate limits (configuration file only).
    rates: RatePolicy,
}

impl Plan {
    fn from_flags(args: &ServeArgs) -> anyhow::Result<Self> {
        let (Some(local_ip), Some((first, last))) = (args.local_ip, args.pool) else {
            bail!("--local-ip and --pool are required without --config");
        };
        if args.dns.len() > 2 {
            bail!("at most two --dns servers");
        }
        if (first..=last).contains(&local_ip) {
            bail!("--local-ip {local_ip} lies inside the pool");
        }
        let pool = RangePool::new(first, last).context("empty pool")?;
        Ok(Self {
            listen: vec![args.listen],
            uplinks: args.uplink.iter().cloned().collect(),
            lans: args.lan.iter().cloned().collect(),
            tun: args.tun.clone(),
            drop_unknown: args.drop_unknown,
            pins: args.pins.pin_dir()?,
            instance: args.pins.instance.clone(),
            settings: ServerSettings {
                name: args.name.clone(),
                auth: args.policy.auth_policy(),
                local_ip,
                dns: [args.dns.first().copied(), args.dns.get(1).copied()],
                nbns: [None, None],
                pool: Arc::new(SharedPool(Arc::new(Mutex::new(pool)))),
                secrets: Arc::new(Users(args.users.clone())),
                mppe: args.policy.mppe_policy(),
                mru: args.mru,
                echo: Some(EchoConfig::DEFAULT),
                control: ControlConfig::default(),
                // The configuration file's defaults.
                limits: LiveLimits::new(Limits::default()),
                radius_auth: false,
            },
            dhcp: DhcpInformConfig {
                server: local_ip,
                domain: args.dhcp_domain.clone(),
                routes: args
                    .dhcp_routes
                    .iter()
                    .map(|&(prefix, len)| StaticRoute {
                        prefix,
                        len,
                        gateway: local_ip,
                    })
                    .collect(),
                dns: args.dns.clone(),
                subnet_mask: None,
            },
            reload: None,
            radius: None,
            demand_dial: Vec::new(),
            rates: RatePolicy::default(),
        })
    }

    fn from_config(path: &std::path::Path) -> anyhow::Result<Self> {
        let config = Config::load(path).map_err(|d| anyhow::anyhow!("{d}"))?;
        let (db, warnings) = config.load_users().map_err(|d| anyhow::anyhow!("{d}"))?;
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        let users = AuthUsers::new(db);
        let radius = config
            .radius
            .clone()
            .map(|r| Radius::new(r, config.auth.source, Arc::new(users.clone())));
        let i = &config.interfaces;
        Ok(Self {
            listen: config.listen.clone(),
            uplinks: i.uplink.clone(),
            lans: i.lan.clone(),
            tun: i.tun.clone(),
            drop_unknown: i.drop_unknown,
            pins: PinDir::new(&i.bpffs, &i.instance)?,
            instance: i.instance.clone(),
            settings: ServerSettings {
                name: config.name.clone(),
                auth: config.auth.policy.clone(),
                local_ip: config.tunnel.local_ip,
                dns: config.tunnel.dns,
                nbns: config.tunnel.wins,
                pool: Arc::new(config.pool(&users)),
                secrets: Arc::new(users.clone()),
                mppe: config.mppe.clone(),
                mru: config.mru,
                echo: config.keepalive.lcp_echo(),
                control: ControlConfig {
                    echo_interval: config.keepalive.control_echo_interval,
                    ..ControlConfig::default()
                },
                limits: LiveLimits::new(config.limits.clone()),
                radius_auth: radius.as_ref().is_some_and(Radius::authenticates),
            },
            dhcp: config.dhcp.clone(),
            demand_dial: config.demand_dial.clone(),
            rates: rate_policy(&config),
            reload: Some((config, users)),
            radius,
        })
    }

    /// Loads the XDP programs and attaches them to the uplinks (and LAN links).
    fn start_xdp(&self) -> anyhow::Result<XdpDataplane> {
        let mut xdp = XdpDataplane::load(
            self.pins.clone(),
            XdpOptions {
                drop_unknown: self.drop_unknown,
            },
        )?;
        let attached = self
            .uplinks
            .iter()
            .try_for_each(|uplink| xdp.attach_uplink(uplink))
            .and_then(|()| self.lans.iter().try_for_each(|lan| xdp.attach_lan(lan)));
        match attached {
            Ok(()) => Ok(xdp),
            Err(e) => {
                // Leave no pins or programs behind for the fallback that follows.
                let _ = xdp.shutdown();
                Err(e)
            }
        }
    }
}

/// The configuration's rate limits, as the engine takes them.
fn rate_policy(config: &Config) -> RatePolicy {
    RatePolicy {
        default: config.auth.default_rate,
        users: config.auth.rates.clone().into_iter().collect(),
    }
}

/// SIGHUP: re-read the configuration and the secrets and put the new users, dial-in
/// permissions, limits and rate limits in force; sessions stay up (those whose rate
/// did not come from RADIUS take the new one).
fn reload(
    state: &mut Option<(Config, AuthUsers)>,
    limits: &LiveLimits,
    hub: &tokio::sync::mpsc::Sender<pptp_agent::runtime::hub::HubCommand>,
) {
    let Some((config, users)) = state else {
        tracing::warn!("SIGHUP: nothing to reload without --config");
        return;
    };
    match config::reload(config) {
        Ok(reload) => {
            for warning in &reload.warnings {
                tracing::warn!("{warning}");
            }
            if !reload.needs_restart.is_empty() {
                tracing::warn!(keys = ?reload.needs_restart, "changed; they take effect after a restart");
            }
            users.replace(reload.users);
            limits.replace(reload.config.limits.clone());
            let rates = pptp_agent::runtime::hub::HubCommand::SetRates(rate_policy(&reload.config));
            if hub.try_send(rates).is_err() {
                tracing::warn!(
                    "SIGHUP: the session hub is busy; the rate limits were not reloaded (send SIGHUP again)"
                );
            }
            *config = reload.config;
            tracing::info!("SIGHUP: secrets, dial-in permissions, limits and rate limits reloaded");
        }
        Err(errors) => {
            tracing::error!(
                "SIGHUP: the new configuration has errors, keeping the old one:\n{errors}"
            )
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    super::options::init_logging();
    let nofile = match fds::raise_nofile_limit() {
        Ok(limit) => {
            if limit.was < limit.now {
                tracing::info!(
                    from = limit.was,
                    to = limit.now,
                    "descriptor limit raised to the hard limit"
                );
            }
            limit.now
        }
        Err(e) => anyhow::bail!("reading RLIMIT_NOFILE: {e}"),
    };
    let plan = match &args.config {
        Some(path) => Plan::from_config(path)?,
        None => Plan::from_flags(&args)?,
    };
    let dhcp = DhcpInformResponder::new(plan.dhcp.clone())
        .map_err(|e| anyhow::anyhow!("DHCPINFORM answers: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let api = args.api.bind(&plan.instance)?;
        let mut xdp = if plan.uplinks.is_empty() {
            tracing::warn!("no uplink: XDP not used, every session takes the agent's path");
            None
        } else {
            match plan.start_xdp() {
                Ok(xdp) => Some(xdp),
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "XDP unavailable: every session takes the agent's path (TUN + raw GRE socket)"
                    );
                    None
                }
            }
        };
        let gre = GreSocket::open().context("opening the raw GRE socket (needs CAP_NET_RAW)")?;
        let tun = Tun::create(&plan.tun, plan.settings.local_ip, None, plan.settings.mru)?;
        if let Some(xdp) = &mut xdp
            && let Err(e) = xdp.attach_session_device(tun.name())
        {
            tracing::warn!(
                error = format!("{e:#}"),
                "TC unavailable: what the box itself sends to clients goes through the agent"
            );
        }
        let Plan {
            listen,
            pins,
            settings,
            reload: mut reload_state,
            radius,
            demand_dial,
            rates: plan_rates,
            ..
        } = plan;
        let pins = xdp.as_ref().map(|_| pins);
        let routers = routers::set_up(
            &demand_dial,
            &LinkDefaults {
                auth: settings.auth.clone(),
                mppe: settings.mppe.clone(),
                mru: settings.mru,
                echo: settings.echo,
                control: settings.control.clone(),
            },
        )?;
        let (hub_tx, hub_rx) = pptp_agent::runtime::hub::channel();
        let guard = Arc::new(GuardStats::default());
        let shared = Shared::new(Guards::new(settings.limits.clone(), guard.clone()));
        let radius = radius.map(|r| {
            r.with_logins(shared.guards().logins.clone())
                .with_stats(guard.clone())
        });
        let reserve = Reserve {
            api: api.connections(),
            radius: radius.as_ref().map_or(0, |r| r.config().sockets as u64),
            dialing: routers.targets.len() as u64,
            ..Reserve::default()
        };
        let dialer = (!routers.targets.is_empty())
            .then(|| routers::dialer(routers.targets, hub_tx.clone(), shared.call_ids()));
        let tun = Arc::new(tun);
        let mut config = EngineConfig::new(Mode::Concentrator);
        config.dhcp = Some(dhcp);
        config.limits = settings.limits.clone();
        config.aaa = AaaSettings {
            radius: radius.is_some(),
            accounting: radius.as_ref().is_some_and(|r| r.accounts()),
            interim: radius.as_ref().and_then(|r| r.config().interim),
        };
        if let Some(r) = &radius {
            config.acct_ids = r.acct_ids().clone();
        }
        config.user_routes = routers.user_routes;
        config.rates = plan_rates;
        config.routers = routers.configs;
        config.dialing = dialer.is_some();
        let network = TunNetwork {
            concentrator: Some(tun.clone()),
            routers: routers.devices.clone(),
            client: None,
        };
        let engine = Engine::new(
            config,
            xdp.map(|x| Box::new(x) as Box<dyn Dataplane>),
            Box::new(network),
            std::time::Instant::now(),
        );
        let parts = HubParts {
            gre,
            devices: Devices {
                concentrator: Some(tun),
                routers: routers.devices,
                client: Arc::default(),
                probe: None,
            },
            radius: radius.clone(),
            dialer,
        };
        let host_routes = routers.host_routes;
        let hub = Hub::new(engine, parts);
        let hub_task = tokio::spawn(hub.run(hub_rx));

        let settings = Arc::new(settings);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut listeners = Vec::new();
        for address in &listen {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("listening on {address}"))?;
            listeners.push((address, listener));
        }
        let api = api.start(hub_tx.clone(), pins, settings.pool.clone(), shared.call_ids(), guard.clone(), stop_rx.clone())?;
        let mut servers = Vec::new();
        if let Some(radius) = radius
            && let Some(dae) = radius.config().dae.clone()
        {
            let socket = tokio::net::UdpSocket::bind(dae.listen)
                .await
                .with_context(|| format!("RADIUS dynamic authorization on {}", dae.listen))?;
            servers.push(tokio::spawn(pptp_agent::runtime::dae::serve(socket, dae, hub_tx.clone(), guard.clone(), stop_rx.clone())));
        }
        // Everything is open: what the limit leaves is for control connections.
        let budget = fd_budget(nofile, &reserve, settings.limits.get().max_sessions)?;
        let shared = shared.clone().with_guards(shared.guards().clone().with_fd_budget(budget));
        for (address, listener) in listeners {
            tracing::info!(listen = %address, "accepting control connections");
            servers.push(tokio::spawn(serve(listener, settings.clone(), shared.clone(), hub_tx.clone(), stop_rx.clone())));
        }

        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break }
                _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break }
                _ = hup.recv() => reload(&mut reload_state, &settings.limits, &hub_tx),
            }
        }
        let (done, wait) = oneshot::channel();
        let _ = hub_tx
            .send(pptp_agent::runtime::hub::HubCommand::Shutdown(done))
            .await;
        let _ = wait.await;
        let _ = stop_tx.send(true);
        api.finish().await;
        for server in servers {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
        }
        let _ = hub_task.await;
        drop(host_routes);
        Ok(())
    })
}

/// The descriptor budget for control connections, logged; a warning when the limit
/// is below what `max_sessions` clients (one control connection each) need.
fn fd_budget(limit: u64, reserve: &Reserve, max_sessions: u32) -> anyhow::Result<FdBudget> {
    let held = fds::open_descriptors().context("counting open descriptors")?;
    let budget = FdBudget::new(limit, held, reserve);
    tracing::info!(
        limit,
        held,
        reserve = reserve.total(),
        control_connections = budget.capacity(),
        "descriptor budget"
    );
    let needed = fds::needed(held, reserve, max_sessions);
    if limit < needed {
        tracing::warn!(
            limit,
            max_sessions,
            needed,
            "the descriptor limit is below what max_sessions voluntary clients need (one control connection each): raise LimitNOFILE (ulimit -n); connections beyond the budget are refused"
        );
    }
    Ok(budget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn flags(extra: &[&str]) -> ServeArgs {
        let mut args = vec!["serve", "--local-ip", "192.0.2.1"];
        args.extend(["--pool", "192.0.2.10-192.0.2.20", "--user", "a:b"]);
        args.extend(extra);
        Command::try_parse_from(args).unwrap().serve
    }

    #[test]
    fn flag_mode_drops_unknown_gre_unless_told_not_to() {
        assert!(flags(&[]).drop_unknown);
        assert!(flags(&["--drop-unknown"]).drop_unknown);
        assert!(!flags(&["--drop-unknown=false"]).drop_unknown);
        assert!(Plan::from_flags(&flags(&[])).unwrap().drop_unknown);
    }

    #[test]
    fn flag_mode_has_the_configuration_files_finite_limits() {
        let limits = Plan::from_flags(&flags(&[])).unwrap().settings.limits.get();
        assert_eq!(limits, Limits::default());
        assert_eq!(limits.caps.unauthenticated_calls_per_connection, Some(4));
        assert_eq!(limits.caps.unauthenticated_calls_per_source, Some(16));
        assert_eq!(limits.caps.connections_per_source, Some(10));
        assert_eq!(limits.max_sessions, 1000);
    }
}

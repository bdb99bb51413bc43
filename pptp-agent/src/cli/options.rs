//! Command-line options shared by `serve` and `dial`: authentication and MPPE policy.

use clap::{Args, ValueEnum};
use pptp_agent::{
    mppe::KeyStrength,
    ppp::{
        auth::{Method, Policy},
        ccp::{MppeMode, MppePolicy},
    },
};

/// An authentication method on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthMethod {
    /// MS-CHAP version 2 (RFC 2759).
    Mschapv2,
    /// MS-CHAP version 1 (RFC 2433).
    Mschap,
    /// CHAP with MD5 (RFC 1994).
    Chap,
    /// PAP (RFC 1334): the password crosses in clear.
    Pap,
}

impl From<AuthMethod> for Method {
    fn from(m: AuthMethod) -> Self {
        match m {
            AuthMethod::Mschapv2 => Method::MsChapV2,
            AuthMethod::Mschap => Method::MsChapV1,
            AuthMethod::Chap => Method::ChapMd5,
            AuthMethod::Pap => Method::Pap,
        }
    }
}

/// MPPE on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mppe {
    /// The link closes unless MPPE is negotiated.
    Require,
    /// MPPE if the peer agrees.
    Prefer,
    /// No MPPE (sessions can take the XDP fast path).
    Deny,
}

#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    /// Authentication methods, most preferred first. Only MS-CHAPv2 by default: a
    /// peer can Nak the other end down to any method allowed, and CHAP-MD5 and
    /// MS-CHAPv1 are weaker still (see the README's security section).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "mschapv2")]
    pub auth: Vec<AuthMethod>,
    /// MPPE policy.
    #[arg(long, value_enum, default_value_t = Mppe::Deny)]
    pub mppe: Mppe,
    /// MPPE key lengths allowed, strongest first.
    #[arg(long, value_delimiter = ',', default_value = "128", value_parser = ["128", "56", "40"])]
    pub mppe_bits: Vec<String>,
    /// Allow stateful MPPE: accept it when the peer asks, and ask for it ourselves
    /// (like pppd's `mppe-stateful`). Without it only stateless MPPE is used.
    #[arg(long)]
    pub mppe_stateful: bool,
}

impl PolicyArgs {
    pub fn auth_policy(&self) -> Policy {
        let methods: Vec<Method> = self.auth.iter().map(|&m| m.into()).collect();
        Policy::new(&methods)
    }

    pub fn mppe_policy(&self) -> MppePolicy {
        MppePolicy {
            mode: match self.mppe {
                Mppe::Require => MppeMode::Require,
                Mppe::Prefer => MppeMode::Prefer,
                Mppe::Deny => MppeMode::Deny,
            },
            strengths: self
                .mppe_bits
                .iter()
                .map(|b| match b.as_str() {
                    "40" => KeyStrength::Bits40,
                    "56" => KeyStrength::Bits56,
                    _ => KeyStrength::Bits128,
                })
                .collect(),
            allow_stateful: self.mppe_stateful,
            request_stateful: self.mppe_stateful,
        }
    }
}

/// Installs the log subscriber (stderr; `RUST_LOG` overrides the `info` default).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        policy: PolicyArgs,
    }

    #[test]
    fn only_mschapv2_unless_asked() {
        let defaults = Command::try_parse_from(["pptp-agent"]).unwrap().policy;
        assert_eq!(defaults.auth_policy().methods, vec![Method::MsChapV2]);
        let asked = Command::try_parse_from(["pptp-agent", "--auth", "mschapv2,chap"])
            .unwrap()
            .policy;
        assert_eq!(
            asked.auth_policy().methods,
            vec![Method::MsChapV2, Method::ChapMd5]
        );
    }
}

//! Gantry's own components by one name each: what `gantry serve <component>`
//! runs, what a stack file's `gantry = "<component>"` names, and the
//! service names auth and user register as.

use std::fmt;
use std::str::FromStr;

/// One of Gantry's own components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    Gateway,
    Auth,
    User,
    Registry,
    /// The harness's fault proxy, alone, driven over Toxiproxy's API.
    #[serde(rename = "faultproxy")]
    FaultProxy,
}

impl Component {
    pub const ALL: [Component; 5] = [
        Component::Gateway,
        Component::Auth,
        Component::User,
        Component::Registry,
        Component::FaultProxy,
    ];
    /// Their names, in the order of [`Component::ALL`].
    pub const NAMES: [&'static str; 5] = ["gateway", "auth", "user", "registry", "faultproxy"];

    /// Its name: the `gantry serve` argument, and for auth and user the
    /// service name it registers as.
    pub const fn name(self) -> &'static str {
        match self {
            Component::Gateway => "gateway",
            Component::Auth => "auth",
            Component::User => "user",
            Component::Registry => "registry",
            Component::FaultProxy => "faultproxy",
        }
    }

    /// Whether it is a service behind the gateway, registering itself under
    /// [`Component::name`] (auth and user), rather than the gateway or the
    /// registry.
    pub fn is_service(self) -> bool {
        matches!(self, Component::Auth | Component::User)
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is none of Gantry's components.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not one of Gantry's components: expected gateway, auth, user, registry or faultproxy")]
pub struct UnknownComponent(pub String);

impl FromStr for Component {
    type Err = UnknownComponent;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Component::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownComponent(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_component_has_one_name_both_ways() {
        for (c, name) in Component::ALL.into_iter().zip(Component::NAMES) {
            assert_eq!(c.name(), name);
            assert_eq!(name.parse::<Component>(), Ok(c));
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{name}\""));
        }
        let e = "nginx".parse::<Component>().unwrap_err().to_string();
        assert!(
            e.contains("\"nginx\"") && e.contains("gateway, auth, user, registry or faultproxy"),
            "{e}"
        );
        assert!(Component::Auth.is_service() && !Component::Gateway.is_service());
    }
}

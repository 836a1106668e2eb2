//! What part a running thing plays in a stack.

/// The closed set of parts of a stack. Services are told apart by name;
/// their instances by a 1-based index (`greeter-2` is `greeter`'s second).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// The stack's Redis (one instance, `redis-1`).
    Redis,
    /// The stack's registry: Consul or Gantry's dev registry (`registry-1`).
    Registry,
    /// A service described by a [`super::spec::ServiceSpec`], under its name.
    Service(String),
    /// Gantry's gateway (its instances are `gateway-1`, `gateway-2`, …).
    Gateway,
}

/// The service name the gateways are addressed by.
pub const GATEWAY: &str = "gateway";

impl Role {
    /// The name instances of this role are addressed by.
    pub fn name(&self) -> &str {
        match self {
            Role::Redis => "redis",
            Role::Registry => "registry",
            Role::Service(name) => name,
            Role::Gateway => GATEWAY,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

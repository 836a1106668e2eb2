//! The shapes of the entries each endpoint answers, as go-bexpr sees
//! Consul's structs: which selectors exist, and what type each ends on.
//! Fields Consul hides from filters (indexes, `Definition`, `Datacenter`
//! of an agent service, …) are not here.

use serde_json::Value;

use super::Op;

/// A field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Str,
    Int,
    Bool,
    /// A list of strings (`Tags`).
    StrList,
    /// A map from strings to the shape (`Meta`, `TaggedAddresses`).
    Map(Box<Shape>),
    Struct(Vec<(&'static str, Shape)>),
    /// A list of structs (`Checks`): selecting through it fans out.
    List(Box<Shape>),
}

static NULL: Value = Value::Null;

impl Shape {
    /// The shape a selector ends on; `None` when no field answers to it.
    pub fn select(&self, path: &[String]) -> Option<Shape> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self.clone());
        };
        match self {
            Shape::Struct(fields) => fields.iter().find(|(name, _)| name == first)?.1.select(rest),
            Shape::Map(inner) => inner.select(rest),
            Shape::List(inner) => inner.select(path),
            _ => None,
        }
    }

    /// Whether a field of this shape takes `op` (go-bexpr's table).
    pub fn takes(&self, op: Op) -> bool {
        use Op::*;
        match self {
            Shape::Str => matches!(op, Equal | NotEqual | In | NotIn | Matches | NotMatches),
            Shape::Int | Shape::Bool => matches!(op, Equal | NotEqual),
            Shape::StrList | Shape::Map(_) => matches!(op, In | NotIn | IsEmpty | IsNotEmpty),
            Shape::List(_) => matches!(op, IsEmpty | IsNotEmpty),
            Shape::Struct(_) => false,
        }
    }

    /// Every value `path` reaches from `value`: one, or one per element of
    /// each list it passes through; `None` for a map key that is not there.
    /// A struct field missing from the JSON reads as `null` (empty).
    pub fn gather<'v>(&self, value: Option<&'v Value>, path: &[String], out: &mut Vec<Option<&'v Value>>) {
        let Some((first, rest)) = path.split_first() else {
            out.push(value);
            return;
        };
        match self {
            Shape::Struct(fields) => {
                if let Some((_, inner)) = fields.iter().find(|(name, _)| name == first) {
                    let field = value.and_then(|v| v.get(first.as_str())).unwrap_or(&NULL);
                    inner.gather(Some(field), rest, out);
                }
            }
            Shape::Map(inner) => match value.and_then(|v| v.get(first.as_str())) {
                Some(found) => inner.gather(Some(found), rest, out),
                None => out.push(None),
            },
            Shape::List(inner) => {
                for element in value.and_then(Value::as_array).into_iter().flatten() {
                    inner.gather(Some(element), path, out);
                }
            }
            _ => {}
        }
    }

    /// Consul's `structs.Node`.
    pub fn node() -> Shape {
        Shape::Struct(vec![
            ("ID", Shape::Str),
            ("Node", Shape::Str),
            ("Address", Shape::Str),
            ("Datacenter", Shape::Str),
            ("Partition", Shape::Str),
            ("PeerName", Shape::Str),
            ("TaggedAddresses", Shape::Map(Box::new(Shape::Str))),
            ("Meta", Shape::Map(Box::new(Shape::Str))),
        ])
    }

    fn service_address() -> Shape {
        Shape::Struct(vec![("Address", Shape::Str), ("Port", Shape::Int)])
    }

    fn weights() -> Shape {
        Shape::Struct(vec![("Passing", Shape::Int), ("Warning", Shape::Int)])
    }

    /// Consul's `NodeService` (in `/v1/health/service`) and `AgentService`
    /// (in `/v1/agent/services`).
    pub fn service() -> Shape {
        Shape::Struct(vec![
            ("Kind", Shape::Str),
            ("ID", Shape::Str),
            ("Service", Shape::Str),
            ("Tags", Shape::StrList),
            ("Address", Shape::Str),
            ("TaggedAddresses", Shape::Map(Box::new(Self::service_address()))),
            ("Meta", Shape::Map(Box::new(Shape::Str))),
            ("Port", Shape::Int),
            ("SocketPath", Shape::Str),
            ("Weights", Self::weights()),
            ("EnableTagOverride", Shape::Bool),
            ("Connect", Shape::Struct(vec![("Native", Shape::Bool)])),
            ("PeerName", Shape::Str),
        ])
    }

    /// Consul's `HealthCheck`.
    pub fn check() -> Shape {
        Shape::Struct(vec![
            ("Node", Shape::Str),
            ("CheckID", Shape::Str),
            ("Name", Shape::Str),
            ("Status", Shape::Str),
            ("Notes", Shape::Str),
            ("Output", Shape::Str),
            ("ServiceID", Shape::Str),
            ("ServiceName", Shape::Str),
            ("ServiceTags", Shape::StrList),
            ("Type", Shape::Str),
            ("Interval", Shape::Str),
            ("Timeout", Shape::Str),
            ("ExposedPort", Shape::Int),
            ("PeerName", Shape::Str),
        ])
    }

    /// An entry of `/v1/health/service/<s>`: `CheckServiceNode`.
    pub fn health_entry() -> Shape {
        Shape::Struct(vec![
            ("Node", Self::node()),
            ("Service", Self::service()),
            ("Checks", Shape::List(Box::new(Self::check()))),
        ])
    }

    /// An entry of `/v1/catalog/service/<s>`: `ServiceNode`.
    pub fn catalog_service() -> Shape {
        Shape::Struct(vec![
            ("ID", Shape::Str),
            ("Node", Shape::Str),
            ("Address", Shape::Str),
            ("Datacenter", Shape::Str),
            ("TaggedAddresses", Shape::Map(Box::new(Shape::Str))),
            ("NodeMeta", Shape::Map(Box::new(Shape::Str))),
            ("ServiceKind", Shape::Str),
            ("ServiceID", Shape::Str),
            ("ServiceName", Shape::Str),
            ("ServiceTags", Shape::StrList),
            ("ServiceAddress", Shape::Str),
            ("ServiceTaggedAddresses", Shape::Map(Box::new(Self::service_address()))),
            ("ServiceWeights", Self::weights()),
            ("ServiceMeta", Shape::Map(Box::new(Shape::Str))),
            ("ServicePort", Shape::Int),
            ("ServiceSocketPath", Shape::Str),
            ("ServiceEnableTagOverride", Shape::Bool),
            ("ServiceConnect", Shape::Struct(vec![("Native", Shape::Bool)])),
            ("PeerName", Shape::Str),
        ])
    }
}

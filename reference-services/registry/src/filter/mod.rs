//! `?filter=`: Consul's filter expressions (go-bexpr v0.1.2, which Consul
//! 1.20 uses), checked against the shape of what an endpoint answers and
//! run over its JSON entries.
//!
//! As go-bexpr: a selector names fields by their JSON names
//! (`Service.Meta.version`, `Checks.Status`); a selector that passes
//! through a list (`Checks.Status`) matches when any element does, and an
//! empty list matches nothing, whatever the operator; a map key that is
//! not there makes `==`, `in` and `is not empty` false and every other
//! operator true (go-bexpr's rule, `matches` included). Which operators a
//! field takes depends on its type; numbers and booleans are read when the
//! filter is made. A selector no field answers to, an operator its field
//! does not take, or a value that is not of its type is refused.

mod parse;
mod shape;

use regex::Regex;
use serde_json::Value;

pub use parse::{ParseError, parse};
pub use shape::Shape;

/// A selector as written: the path of field names and map keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(pub Vec<String>);

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// The match operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equal,
    NotEqual,
    /// `value in Selector`, or `Selector contains value`.
    In,
    NotIn,
    Matches,
    NotMatches,
    IsEmpty,
    IsNotEmpty,
}

impl Op {
    /// go-bexpr's name for it, as its errors print it.
    fn name(self) -> &'static str {
        match self {
            Op::Equal => "Equal",
            Op::NotEqual => "Not Equal",
            Op::In => "In",
            Op::NotIn => "Not In",
            Op::Matches => "Matches",
            Op::NotMatches => "Not Matches",
            Op::IsEmpty => "Is Empty",
            Op::IsNotEmpty => "Is Not Empty",
        }
    }

    /// What the operator answers for a map key that is not there.
    fn on_missing(self) -> bool {
        !matches!(self, Op::Equal | Op::In | Op::IsNotEmpty)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub selector: Selector,
    pub op: Op,
    pub value: Option<String>,
}

/// An expression as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match(Match),
}

/// A match's value, read as its field's type when the filter was made.
#[derive(Debug, Clone)]
enum Operand {
    None,
    Text(String),
    Int(i64),
    Bool(bool),
    Pattern(Regex),
}

/// A match ready to run against an entry.
#[derive(Debug, Clone)]
struct Leaf {
    path: Vec<String>,
    op: Op,
    target: Shape,
    operand: Operand,
}

#[derive(Debug, Clone)]
enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Leaf(Leaf),
}

/// A filter checked against the shape of the entries it will see.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Node,
    shape: Shape,
}

/// Consul prefixes every refusal of a filter with this.
pub const REFUSAL_PREFIX: &str = "Failed to create boolean expression evaluator";

impl Filter {
    /// Parses `text` and checks it against `shape`; the refusal in Consul's
    /// words.
    pub fn new(text: &str, shape: Shape) -> Result<Self, String> {
        let expr = parse(text).map_err(|e| format!("{REFUSAL_PREFIX}: {e}"))?;
        let root = check(&expr, &shape).map_err(|e| format!("{REFUSAL_PREFIX}: {e}"))?;
        Ok(Filter { root, shape })
    }

    /// Whether `entry` (one element of the answer) passes.
    pub fn admits(&self, entry: &Value) -> bool {
        eval(&self.root, entry, &self.shape)
    }

    /// Keeps the entries of an answer that pass: a list's elements, or a
    /// map's values (the agent endpoints answer maps).
    pub fn apply(&self, body: Value) -> Value {
        match body {
            Value::Array(list) => Value::Array(list.into_iter().filter(|e| self.admits(e)).collect()),
            Value::Object(map) => Value::Object(map.into_iter().filter(|(_, e)| self.admits(e)).collect()),
            other => other,
        }
    }
}

fn check(expr: &Expr, shape: &Shape) -> Result<Node, String> {
    Ok(match expr {
        Expr::And(a, b) => Node::And(Box::new(check(a, shape)?), Box::new(check(b, shape)?)),
        Expr::Or(a, b) => Node::Or(Box::new(check(a, shape)?), Box::new(check(b, shape)?)),
        Expr::Not(a) => Node::Not(Box::new(check(a, shape)?)),
        Expr::Match(m) => Node::Leaf(leaf(m, shape)?),
    })
}

fn leaf(m: &Match, shape: &Shape) -> Result<Leaf, String> {
    let target = shape
        .select(&m.selector.0)
        .ok_or_else(|| format!("Selector {:?} is not valid", m.selector.to_string()))?;
    if !target.takes(m.op) {
        return Err(format!(
            "Invalid match operator {:?} for selector {:?}",
            m.op.name(),
            m.selector.to_string()
        ));
    }
    let text = m.value.clone().unwrap_or_default();
    let coerce_failed = |e: &dyn std::fmt::Display| {
        format!(
            "Failed to coerce value {text:?} for selector {:?}: {e}",
            m.selector.to_string()
        )
    };
    let operand = match (m.op, &target) {
        (Op::IsEmpty | Op::IsNotEmpty, _) => Operand::None,
        (Op::Matches | Op::NotMatches, _) => Operand::Pattern(
            Regex::new(&text).map_err(|e| format!("Failed to compile regular expression {text:?}: {e}"))?,
        ),
        (Op::Equal | Op::NotEqual, Shape::Int) => Operand::Int(text.parse().map_err(|e| coerce_failed(&e))?),
        (Op::Equal | Op::NotEqual, Shape::Bool) => Operand::Bool(match text.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
            "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
            _ => return Err(coerce_failed(&"invalid syntax")),
        }),
        _ => Operand::Text(text),
    };
    Ok(Leaf {
        path: m.selector.0.clone(),
        op: m.op,
        target,
        operand,
    })
}

fn eval(node: &Node, entry: &Value, shape: &Shape) -> bool {
    match node {
        Node::And(a, b) => eval(a, entry, shape) && eval(b, entry, shape),
        Node::Or(a, b) => eval(a, entry, shape) || eval(b, entry, shape),
        Node::Not(a) => !eval(a, entry, shape),
        Node::Leaf(leaf) => {
            let mut found = Vec::new();
            shape.gather(Some(entry), &leaf.path, &mut found);
            found.into_iter().any(|v| test(leaf, v))
        }
    }
}

/// One candidate value against a match; `None` is a map key not there.
fn test(leaf: &Leaf, value: Option<&Value>) -> bool {
    let Some(value) = value else {
        return leaf.op.on_missing();
    };
    let text = || value.as_str().unwrap_or_default();
    let equal = || match &leaf.operand {
        Operand::Int(i) => value.as_i64() == Some(*i),
        Operand::Bool(b) => value.as_bool().unwrap_or(false) == *b,
        Operand::Text(t) => text() == t,
        Operand::None | Operand::Pattern(_) => false,
    };
    let contains = || {
        let Operand::Text(t) = &leaf.operand else {
            return false;
        };
        match (&leaf.target, value) {
            (Shape::StrList, Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(t)),
            (Shape::Map(_), Value::Object(map)) => map.contains_key(t),
            (Shape::Str, _) => text().contains(t.as_str()),
            _ => false,
        }
    };
    let matches = || match &leaf.operand {
        Operand::Pattern(re) => re.is_match(text()),
        _ => false,
    };
    let empty = || match value {
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    };
    match leaf.op {
        Op::Equal => equal(),
        Op::NotEqual => !equal(),
        Op::In => contains(),
        Op::NotIn => !contains(),
        Op::Matches => matches(),
        Op::NotMatches => !matches(),
        Op::IsEmpty => empty(),
        Op::IsNotEmpty => !empty(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entries() -> Vec<Value> {
        vec![
            json!({
                "Node": {"Node": "n1", "Meta": {}},
                "Service": {"ID": "web-1", "Service": "web", "Tags": ["v1", "blue"], "Port": 8080,
                            "Meta": {"version": "1.2"}, "EnableTagOverride": false,
                            "Weights": {"Passing": 1, "Warning": 1}},
                "Checks": [{"CheckID": "serfHealth", "Status": "passing"},
                           {"CheckID": "service:web-1", "Status": "critical"}],
            }),
            json!({
                "Node": {"Node": "n1", "Meta": {}},
                "Service": {"ID": "web-2", "Service": "web", "Tags": [], "Port": 9090, "Meta": {},
                            "EnableTagOverride": true, "Weights": {"Passing": 3, "Warning": 1}},
                "Checks": [{"CheckID": "serfHealth", "Status": "passing"}],
            }),
        ]
    }

    fn ids(text: &str) -> Vec<String> {
        let f = Filter::new(text, Shape::health_entry()).unwrap_or_else(|e| panic!("{text}: {e}"));
        entries()
            .iter()
            .filter(|e| f.admits(e))
            .map(|e| e["Service"]["ID"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn operators_by_field_type() {
        assert_eq!(ids("Service.Port == 8080"), ["web-1"]);
        assert_eq!(ids(r#"Service.Port != "8080""#), ["web-2"], "a quoted number coerces");
        assert_eq!(ids("v1 in Service.Tags"), ["web-1"]);
        assert_eq!(ids("Service.Tags is empty"), ["web-2"]);
        assert_eq!(
            ids("Service.ID contains \"-2\""),
            ["web-2"],
            "contains on a string is a substring"
        );
        assert_eq!(ids("Service.ID matches \"^web-[0-9]$\""), ["web-1", "web-2"]);
        assert_eq!(ids("Service.EnableTagOverride == true"), ["web-2"]);
        assert_eq!(ids("Service.Weights.Passing == 3"), ["web-2"]);
        assert_eq!(ids("version in Service.Meta"), ["web-1"], "in on a map is a key");
        assert_eq!(
            ids("Service.Meta.version == \"1.2\" or Service.Port == 9090"),
            ["web-1", "web-2"]
        );
        assert_eq!(ids("not Service.Port == 8080"), ["web-2"]);
    }

    #[test]
    fn a_list_matches_when_any_element_does() {
        assert_eq!(ids("Checks.Status == critical"), ["web-1"]);
        assert_eq!(
            ids("Checks.Status != critical"),
            ["web-1", "web-2"],
            "any element that is not critical"
        );
        assert_eq!(ids("Checks.Status == passing"), ["web-1", "web-2"]);
        assert_eq!(ids("Checks is not empty"), ["web-1", "web-2"]);
    }

    #[test]
    fn a_missing_map_key_fails_equality_and_passes_the_rest() {
        assert_eq!(ids("Service.Meta.version == \"1.2\""), ["web-1"]);
        assert_eq!(ids("Service.Meta.version != \"1.2\""), ["web-2"]);
        assert_eq!(
            ids("Service.Meta.version matches \"^9\""),
            ["web-2"],
            "go-bexpr v0.1.2's rule"
        );
    }

    #[test]
    fn what_no_field_takes_is_refused_naming_it() {
        let refuse = |text: &str| Filter::new(text, Shape::health_entry()).unwrap_err();
        assert_eq!(
            refuse("Service.Foo == x"),
            format!("{REFUSAL_PREFIX}: Selector \"Service.Foo\" is not valid")
        );
        assert_eq!(
            refuse("Service.Address is empty"),
            format!("{REFUSAL_PREFIX}: Invalid match operator \"Is Empty\" for selector \"Service.Address\"")
        );
        assert!(refuse("Service.Port == abc").contains("Failed to coerce value \"abc\" for selector \"Service.Port\""));
        assert!(refuse("Service.ID matches \"(\"").contains("Failed to compile regular expression"));
        assert!(refuse("Service.ID = x").starts_with(&format!("{REFUSAL_PREFIX}: 1:12 (11)")));
    }
}

//! `/v1/catalog/*`: the services by name, and the instances of one.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, RawQuery, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::json::{DATACENTER, NODE_ID, NODE_NAME};
use super::{BlockingQuery, blocking_read, has_tags, json as shape, tags};
use crate::acl::Access;
use crate::catalog::Catalog;
use crate::filter::Shape;
use crate::state::Registry;

pub async fn services(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Query(q): Query<BlockingQuery>,
) -> Response {
    blocking_read(&reg, access, q, None, Catalog::index, |c| {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in c.services() {
            let tags = map.entry(s.record.name.clone()).or_default();
            for t in &s.record.tags {
                if !tags.contains(t) {
                    tags.push(t.clone());
                }
            }
        }
        serde_json::to_value(map).unwrap_or_default()
    })
    .await
}

/// `GET /v1/catalog/service/{name}`: every instance of a service, whatever
/// its health; `?tag=` (any number of times) keeps those carrying every tag.
pub async fn service(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    Query(q): Query<BlockingQuery>,
    RawQuery(raw): RawQuery,
) -> Response {
    let wanted = tags(raw.as_deref());
    blocking_read(
        &reg,
        access,
        q,
        Some(Shape::catalog_service()),
        |c| c.index_of(&name),
        |c| {
            let entries: Vec<Value> = c
                .instances_of(&name)
                .filter(|s| has_tags(&s.record.tags, &wanted))
                .map(|s| {
                    let mut v = json!({
                        "ID": NODE_ID,
                        "Node": NODE_NAME,
                        "Address": "127.0.0.1",
                        "Datacenter": DATACENTER,
                        "ServiceID": s.record.id,
                        "ServiceName": s.record.name,
                        "ServiceAddress": s.record.address,
                        "ServicePort": s.record.port,
                        "ServiceTags": s.record.tags,
                        "ServiceMeta": s.record.meta,
                        "ServiceWeights": shape::weights(&s.extras),
                        "ServiceEnableTagOverride": s.extras.enable_tag_override,
                        "CreateIndex": s.create_index,
                        "ModifyIndex": s.modify_index,
                    });
                    if let Some(tagged) = shape::tagged_addresses(&s.extras) {
                        v["ServiceTaggedAddresses"] = tagged;
                    }
                    v
                })
                .collect();
            Value::Array(entries)
        },
    )
    .await
}

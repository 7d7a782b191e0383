//! Manifests built field by field — valid apart from the fields a test replaces — and what
//! the apiserver said when it refused one.

use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject},
};
use serde_json::{Value, json};

use crate::end_state::workspace_json;

/// A valid schedule with some fields replaced (`null` removes one).
pub fn schedule_with(changes: Value) -> Value {
    let mut s = json!({
        "startAt": "2031-01-01 00:00:00",
        "stopAt": "2032-01-01 00:00:00",
        "interval": 3600,
        "timezone": "Europe/Stockholm"
    });
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            s.as_object_mut().unwrap().remove(k);
        } else {
            s[k] = v.clone();
        }
    }
    s
}

/// A valid QlikAutomation spec with top-level fields replaced (`null` removes one).
pub fn automation_spec_with(changes: Value) -> Value {
    let mut spec = json!({
        "connection": {"secretRef": {"name": "qlik"}},
        "description": "valid apart from one field",
        "schedules": [schedule_with(json!({}))],
        "workspace": workspace_json("manual"),
    });
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            spec.as_object_mut().unwrap().remove(k);
        } else {
            spec[k] = v.clone();
        }
    }
    spec
}

pub fn dynamic_api<K: kube::Resource<DynamicType = ()>>(
    client: &Client,
    namespace: &str,
) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &ApiResource::erase::<K>(&()))
}

pub fn dynamic(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "automations.qlik.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

/// What the apiserver said, including every cause's field.
pub fn refusal(err: &kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => {
            let mut text = status.message.clone();
            if let Some(details) = &status.details {
                for cause in &details.causes {
                    text.push_str(&format!(" [{}: {}]", cause.field, cause.message));
                }
            }
            (status.code, text)
        }
        other => (0, other.to_string()),
    }
}

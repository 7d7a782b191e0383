//! Which QlikAutomations claim which remote automation, kept from the same watch events that
//! fill the stores.
//!
//! The conflict rules (two objects never share a remote) ask "who else claims this id?" on
//! every reconcile. Answered by scanning every object, that question cost O(N) per reconcile:
//! at N = 10 000 it was two thirds of the operator's CPU and slowed every reconcile behind it.
//! The index answers it with the few objects that claim the id; the caller then reads those
//! objects from the store and applies the rules unchanged.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use kube::runtime::{reflector::ObjectRef, watcher};

use crate::crd::QlikAutomation;

/// The remote id an object claims, as the conflict rules read it.
pub type Linked = fn(&QlikAutomation) -> Option<&str>;

/// Claims by remote id, one part per watch stream (one per watched namespace), each
/// following its stream's events exactly as its store does.
pub struct ClaimIndex {
    linked: Linked,
    parts: Mutex<Vec<Part>>,
}

/// The claims seen by one watch stream.
#[derive(Default)]
struct Part {
    by_object: HashMap<ObjectRef<QlikAutomation>, String>,
    by_id: HashMap<String, HashSet<ObjectRef<QlikAutomation>>>,
    /// During a relist: the claims listed so far, which replace the part when it is done
    /// (as the store is replaced), so objects gone meanwhile leave the index too.
    relisting: Option<HashMap<ObjectRef<QlikAutomation>, String>>,
}

impl Part {
    fn set(&mut self, key: ObjectRef<QlikAutomation>, id: Option<&str>) {
        if let Some(old) = self.by_object.remove(&key)
            && let Some(claimants) = self.by_id.get_mut(&old)
        {
            claimants.remove(&key);
            if claimants.is_empty() {
                self.by_id.remove(&old);
            }
        }
        if let Some(id) = id {
            self.by_id
                .entry(id.to_owned())
                .or_default()
                .insert(key.clone());
            self.by_object.insert(key, id.to_owned());
        }
    }

    fn replace(&mut self, listed: HashMap<ObjectRef<QlikAutomation>, String>) {
        self.by_object.clear();
        self.by_id.clear();
        for (key, id) in listed {
            self.set(key, Some(&id));
        }
    }
}

impl ClaimIndex {
    /// An empty index reading each object's claim with `linked`.
    pub fn new(linked: Linked) -> ClaimIndex {
        ClaimIndex {
            linked,
            parts: Mutex::new(Vec::new()),
        }
    }

    /// A new part for one more watch stream: pass the number to [`ClaimIndex::apply`].
    pub fn add_part(&self) -> usize {
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        parts.push(Part::default());
        parts.len() - 1
    }

    /// Follows one event of the watch stream of `part`.
    pub fn apply(&self, part: usize, event: &watcher::Event<QlikAutomation>) {
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(part) = parts.get_mut(part) else {
            return;
        };
        match event {
            watcher::Event::Apply(obj) => part.set(ObjectRef::from_obj(obj), (self.linked)(obj)),
            watcher::Event::Delete(obj) => part.set(ObjectRef::from_obj(obj), None),
            watcher::Event::Init => part.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(obj) => {
                if let (Some(listed), Some(id)) = (part.relisting.as_mut(), (self.linked)(obj)) {
                    listed.insert(ObjectRef::from_obj(obj), id.to_owned());
                }
            }
            watcher::Event::InitDone => {
                if let Some(listed) = part.relisting.take() {
                    part.replace(listed);
                }
            }
        }
    }

    /// The objects that claim `id`, in every part.
    pub fn claimants(&self, id: &str) -> Vec<ObjectRef<QlikAutomation>> {
        let parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        parts
            .iter()
            .filter_map(|p| p.by_id.get(id))
            .flatten()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(name: &str, id: Option<&str>) -> QlikAutomation {
        let mut obj: QlikAutomation = serde_json::from_value(json!({
            "apiVersion": "automations.qlik.dev/v1alpha1",
            "kind": "QlikAutomation",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"workspace": {}}
        }))
        .unwrap();
        if let Some(id) = id {
            obj.status = Some(crate::crd::QlikAutomationStatus {
                automation_id: Some(id.to_owned()),
                ..Default::default()
            });
        }
        obj
    }

    fn linked(obj: &QlikAutomation) -> Option<&str> {
        obj.status.as_ref()?.automation_id.as_deref()
    }

    fn names(index: &ClaimIndex, id: &str) -> Vec<String> {
        let mut names: Vec<String> = index.claimants(id).into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    #[test]
    fn follows_applies_and_deletes() {
        let index = ClaimIndex::new(linked);
        let part = index.add_part();
        index.apply(part, &watcher::Event::Apply(object("a", Some("x"))));
        index.apply(part, &watcher::Event::Apply(object("b", Some("x"))));
        index.apply(part, &watcher::Event::Apply(object("c", None)));
        assert_eq!(names(&index, "x"), ["a", "b"]);
        // A claim that moves leaves its old id.
        index.apply(part, &watcher::Event::Apply(object("a", Some("y"))));
        assert_eq!(names(&index, "x"), ["b"]);
        assert_eq!(names(&index, "y"), ["a"]);
        index.apply(part, &watcher::Event::Delete(object("b", Some("x"))));
        assert!(names(&index, "x").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_part_and_keeps_the_others() {
        let index = ClaimIndex::new(linked);
        let first = index.add_part();
        let second = index.add_part();
        index.apply(first, &watcher::Event::Apply(object("gone", Some("x"))));
        index.apply(first, &watcher::Event::Apply(object("kept", Some("y"))));
        index.apply(second, &watcher::Event::Apply(object("other", Some("x"))));
        index.apply(first, &watcher::Event::Init);
        index.apply(first, &watcher::Event::InitApply(object("kept", Some("y"))));
        // Until the relist is done, the claims known before it stand.
        assert_eq!(names(&index, "x"), ["gone", "other"]);
        index.apply(first, &watcher::Event::InitDone);
        // "gone" was deleted while the watch was down: not listed, so no longer a claimant.
        assert_eq!(names(&index, "x"), ["other"]);
        assert_eq!(names(&index, "y"), ["kept"]);
    }
}

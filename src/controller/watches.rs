//! The watches that feed the controllers: which changes trigger a reconcile, how a watch
//! backs off, and which objects a changed Secret or ConfigMap concerns.

use std::{sync::Arc, time::Duration};

use kube::{
    Api, ResourceExt,
    runtime::{
        Predicate, WatchStreamExt, predicates,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};

use crate::{backoff::Backoff, crd::QlikAutomation};

/// The stores of several namespaces seen as one.
#[derive(Clone)]
pub struct Stores<K: kube::Resource<DynamicType = ()> + Clone + 'static>(Vec<Store<K>>);

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Stores<K> {
    /// The stores of one controller per watched namespace.
    pub fn new(stores: Vec<Store<K>>) -> Stores<K> {
        Stores(stores)
    }

    /// Every object in every store.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.0.iter().flat_map(|s| s.state()).collect()
    }

    /// The object `key` refers to, from whichever store holds it.
    pub fn get(&self, key: &ObjectRef<K>) -> Option<Arc<K>> {
        self.0.iter().find_map(|s| s.get(key))
    }
}

/// The watch of `api` that feeds a controller: every object goes into the store, but only a
/// change of generation (spec, deletion) or of annotations (adoption, run and reconcile
/// requests) triggers a reconcile. Status writes, the operator's own included, do not: a
/// failing object whose condition message changes on every attempt (Qlik's traceId) would
/// otherwise reconcile itself in a loop.
///
/// `on_event` sees every event right after the store took it, to keep indexes of the store
/// (see [`super::claims`]) in step with it.
pub fn spec_changes<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
    on_event: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use futures::StreamExt;
    watcher(api, config)
        .backoff(watch_backoff())
        // managedFields are often the largest part of an object and nothing here reads them.
        .modify(|obj| obj.meta_mut().managed_fields = None)
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(event) = event {
                on_event(event);
            }
        })
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(user_annotations),
            Default::default(),
        )
}

/// The backoff of every watch after an error: client-go's shape (0.5 s, doubling, with
/// jitter) but capped at 5 s (plus jitter) instead of kube's default 30 s. After an
/// apiserver outage a watch first waits out its grown backoff, then fails once more with
/// 410 Gone (its resourceVersion is too old for the restarted apiserver) and waits again
/// before it relists; with the default cap, and the controller's shared trigger backoff on
/// top, changes made after the apiserver came back went unseen for minutes. A retry every
/// 5 s during an outage costs one cheap request per watch.
pub fn watch_backoff() -> WatchBackoff {
    WatchBackoff { failures: 0 }
}

/// See [`watch_backoff`]: 0.5 s, doubling up to 5 s, each with up to 50 % jitter; reset by
/// the stream on its next success.
pub struct WatchBackoff {
    failures: u32,
}

impl WatchBackoff {
    const POLICY: Backoff = Backoff {
        base: Duration::from_millis(500),
        cap: Duration::from_secs(5),
        jitter: 0.5,
    };
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = Self::POLICY.wait(self.failures);
        self.failures = self.failures.saturating_add(1);
        Some(wait)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A hash of the annotations, except the create intent the operator writes and clears around
/// every create: reacting to it would turn each failed create into an immediate retry.
fn user_annotations<K: kube::Resource>(obj: &K) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    let mut annotations: Vec<_> = obj
        .meta()
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != crate::crd::ANNOTATION_CREATE_PENDING)
        .collect();
    annotations.sort();
    annotations.hash(&mut hasher);
    Some(hasher.finish())
}

/// The automations in `store` that use the Secret or ConfigMap `other`.
pub fn referencing<O: ResourceExt>(
    store: &Store<QlikAutomation>,
    other: &O,
    uses: impl Fn(&QlikAutomation, &str) -> bool,
) -> Vec<ObjectRef<QlikAutomation>> {
    let name = other.name_any();
    let ns = other.namespace();
    store
        .state()
        .iter()
        .filter(|a| a.namespace() == ns && uses(a, &name))
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

#[cfg(test)]
mod watch_backoff_tests {
    use super::*;

    #[test]
    fn watches_back_off_briefly_even_after_a_long_outage() {
        let mut backoff = watch_backoff();
        let waits: Vec<Duration> = (0..30).map(|_| backoff.next().unwrap()).collect();
        assert!(waits[0] < Duration::from_secs(1), "{waits:?}");
        assert!(
            waits.iter().all(|w| *w <= Duration::from_millis(7500)),
            "{waits:?}"
        );
        assert!(waits[29] >= Duration::from_secs(5), "{waits:?}");
        kube::runtime::utils::Backoff::reset(&mut backoff);
        assert!(backoff.next().unwrap() < Duration::from_secs(1));
    }
}

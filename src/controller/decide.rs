//! Decisions of the `QlikAutomation` reconciler that are not a spec diff (that is
//! [`super::plan`]): plain values in, an enum out, no I/O, so each rule is a table test.

/// What to do when the tenant answers 404 for the remote an object is linked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnGone {
    /// The operator had seen this remote (it created it, or adopted and reconciled it): it
    /// was deleted out of band, so create it again.
    Recreate,
    /// Report `NotFound` with this message and create nothing.
    NotFound(String),
}

/// Decides about the linked remote `gone` the tenant just answered 404 for.
///
/// `seen` is the id status last recorded (the operator only records an id it has seen),
/// `link` the id the reconcile started from, and `recreating` whether this reconcile has
/// already recreated once (a remote that vanishes again at once is not chased in a loop).
pub fn on_remote_gone(
    gone: &str,
    seen: Option<&str>,
    link: Option<&str>,
    recreating: bool,
) -> OnGone {
    if recreating {
        return OnGone::NotFound(format!(
            "automation {gone} was created again but the tenant answered 404 for it at once; retrying later"
        ));
    }
    if seen == Some(gone) {
        return OnGone::Recreate;
    }
    match link {
        Some(id) if id == gone => OnGone::NotFound(format!(
            "automation {gone} named by the {} annotation does not exist or is not visible to this key",
            crate::crd::ANNOTATION_AUTOMATION_ID
        )),
        // A remote this reconcile made or found itself, then lost: it was seen, recreate.
        _ => OnGone::Recreate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_404_recreates_only_what_the_operator_has_seen() {
        // (gone, seen in status, linked at start, recreating) → recreate?
        let cases = [
            ("a", Some("a"), Some("a"), false, true),
            // A user's adoption annotation naming an id never seen: NotFound.
            ("a", None, Some("a"), false, false),
            // Status recorded another remote; the annotation was changed to `a` by a user.
            ("a", Some("b"), Some("a"), false, false),
            // Made by this very reconcile (no link at start), then gone: recreate.
            ("a", None, None, false, true),
            // Already recreated once in this reconcile: stop and report.
            ("a", Some("a"), Some("a"), true, false),
            ("c", None, None, true, false),
        ];
        for (gone, seen, link, recreating, recreate) in cases {
            let decision = on_remote_gone(gone, seen, link, recreating);
            assert_eq!(
                decision == OnGone::Recreate,
                recreate,
                "{gone} {seen:?} {link:?} {recreating}: {decision:?}"
            );
            if let OnGone::NotFound(message) = decision {
                assert!(message.contains(gone), "{message}");
            }
        }
    }
}

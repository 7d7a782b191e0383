//! One client per tenant, user and API generation, shared by everything in the process.
//!
//! Qlik counts rate limits per user and tier, so every reconcile, both controllers and any
//! other caller that uses the same tenant and key must draw from one limiter. The pool hands
//! out clones of one [`QlikClient`] per (tenant, credential, generation), which share that
//! limiter, the connection pool and (for an OAuth bot) the access token, and report to the
//! template's [`Telemetry`](super::Telemetry) (if any) labelled with that tenant and key
//! digest. Two generations of one identity get two clients but one limiter: Qlik's budget is
//! the user's, whichever path the requests take.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::{
    auth::Credential,
    client::{ClientConfig, QlikClient, api_base},
    endpoint::Api,
    error::QlikError,
    ratelimit::RateLimiter,
};

/// Hands out one shared client per tenant, credential and API generation.
#[derive(Debug)]
pub struct ClientPool {
    template: ClientConfig,
    clients: Mutex<HashMap<(String, Credential, Api), QlikClient>>,
}

impl ClientPool {
    /// A pool whose clients take timeouts, retries, limits, TLS settings and telemetry from
    /// `template` (its tenant URL and key are ignored).
    pub fn new(template: ClientConfig) -> Arc<ClientPool> {
        Arc::new(ClientPool {
            template,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The client of `tenant_url` as the user of `credential`, speaking generation `api`,
    /// created on first use.
    pub fn client(
        &self,
        tenant_url: &str,
        credential: &Credential,
        api: Api,
    ) -> Result<QlikClient, QlikError> {
        let base = api_base(tenant_url)?.to_string();
        let key = (base.clone(), credential.clone(), api);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let config = ClientConfig {
            tenant_url: base.clone(),
            credential: credential.clone(),
            api,
            ..self.template.clone()
        };
        // Another client of the same user (the other generation, or the same bot with a
        // rotated secret), if any, lends its limiter: the budget is the user's.
        let sibling = clients
            .iter()
            .find(|((b, c, _), _)| *b == base && c.identity_seed() == credential.identity_seed())
            .map(|(_, client)| client.limiter().clone());
        let limiter =
            sibling.unwrap_or_else(|| Arc::new(RateLimiter::new(self.template.rate_limits)));
        let client = QlikClient::with_limiter(config, limiter)?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// How many distinct tenant/user clients exist.
    pub fn len(&self) -> usize {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no client was created yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qlik::{Answer, ApiKey, Budget, Caller, Endpoint, Telemetry, Tier};

    fn key(k: &str) -> Credential {
        Credential::ApiKey(ApiKey::new(k))
    }

    #[test]
    fn one_limiter_per_tenant_and_key() {
        let pool = ClientPool::new(ClientConfig::new("https://unused", ApiKey::new("unused")));
        let w = Api::Workflows;
        let a = pool
            .client("https://t1.example.com", &key("k1"), w)
            .unwrap();
        let b = pool
            .client("https://t1.example.com/api/", &key("k1"), w)
            .unwrap();
        let c = pool
            .client("https://t1.example.com", &key("k2"), w)
            .unwrap();
        let d = pool
            .client("https://t2.example.com", &key("k1"), w)
            .unwrap();
        let e = pool
            .client("https://t1.example.com", &key("k1"), Api::V1)
            .unwrap();
        assert!(Arc::ptr_eq(a.limiter(), b.limiter()));
        assert!(!Arc::ptr_eq(a.limiter(), c.limiter()));
        assert!(!Arc::ptr_eq(a.limiter(), d.limiter()));
        // One user, one budget, whichever generation the requests use.
        assert!(Arc::ptr_eq(a.limiter(), e.limiter()));
        assert_eq!((a.api(), e.api()), (Api::Workflows, Api::V1));
        assert_eq!(pool.len(), 4);
        // A bot whose secret was rotated is still the same user with the same budget.
        let bot = |secret: &str| {
            Credential::OAuth(crate::qlik::OAuthClient {
                client_id: "bot".into(),
                client_secret: crate::qlik::Redacted::new(secret),
                scope: String::new(),
            })
        };
        let old = pool
            .client("https://t1.example.com", &bot("s1"), w)
            .unwrap();
        let new = pool
            .client("https://t1.example.com", &bot("s2"), w)
            .unwrap();
        assert!(Arc::ptr_eq(old.limiter(), new.limiter()));
        assert_ne!(old.credential(), new.credential());
    }

    /// Records the budgets reported, by (tenant, identity, tier).
    #[derive(Debug, Default)]
    struct Budgets(Mutex<Vec<(Caller, Tier, Budget)>>);

    impl Telemetry for Budgets {
        fn answered(&self, _: &Caller, _: Tier, _: Endpoint, _: Answer) {}
        fn waited(&self, _: &Caller, _: Tier, _: std::time::Duration) {}
        fn budget(&self, caller: &Caller, tier: Tier, budget: Budget) {
            self.0.lock().unwrap().push((caller.clone(), tier, budget));
        }
    }

    #[test]
    fn pooled_clients_report_to_the_template_telemetry_as_their_tenant_and_key() {
        let budgets = Arc::new(Budgets::default());
        let mut template = ClientConfig::new("https://unused", ApiKey::new("unused"));
        template.rate_limits.tier2_per_minute = 7;
        template.telemetry = Some(budgets.clone());
        let pool = ClientPool::new(template);
        let a = pool
            .client("https://t1.example.com:8443", &key("k1"), Api::Workflows)
            .unwrap();
        pool.client(
            "https://t1.example.com:8443/api",
            &key("k1"),
            Api::Workflows,
        )
        .unwrap();
        let seen = budgets.0.lock().unwrap().clone();
        // Created once, reported once per tier, before any request: the whole budget.
        assert_eq!(seen.len(), 2, "{seen:?}");
        for (caller, tier, budget) in &seen {
            assert_eq!(caller, a.caller());
            assert_eq!(caller.tenant, "t1.example.com:8443");
            assert!(!caller.identity.contains("k1"));
            // Per window: the per-minute limits times the five minutes Qlik counts over.
            let limit = if *tier == Tier::Tier2 { 35 } else { 5000 };
            assert_eq!(
                *budget,
                Budget {
                    remaining: limit,
                    limit
                }
            );
        }
    }
}

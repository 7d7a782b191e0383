//! One client per tenant and user, shared by everything in the process.
//!
//! Qlik counts rate limits per user and tier, so every reconcile, both controllers and any
//! other caller that uses the same tenant and key must draw from one limiter. The pool hands
//! out clones of one [`QlikClient`] per (tenant, key), which share that limiter and the
//! connection pool, and report to the template's [`Telemetry`](super::Telemetry) (if any)
//! labelled with that tenant and key digest.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::{
    client::{ApiKey, ClientConfig, QlikClient, api_base},
    error::QlikError,
};

/// Hands out one shared client per tenant and API key.
#[derive(Debug)]
pub struct ClientPool {
    template: ClientConfig,
    clients: Mutex<HashMap<(String, ApiKey), QlikClient>>,
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

    /// The client of `tenant_url` as the user of `api_key`, created on first use.
    pub fn client(&self, tenant_url: &str, api_key: &ApiKey) -> Result<QlikClient, QlikError> {
        let base = api_base(tenant_url)?.to_string();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&(base.clone(), api_key.clone())) {
            return Ok(c.clone());
        }
        let client = QlikClient::new(ClientConfig {
            tenant_url: base.clone(),
            api_key: api_key.clone(),
            ..self.template.clone()
        })?;
        clients.insert((base, api_key.clone()), client.clone());
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
    use crate::qlik::{Answer, Budget, Caller, Endpoint, Telemetry, Tier};

    #[test]
    fn one_limiter_per_tenant_and_key() {
        let pool = ClientPool::new(ClientConfig::new("https://unused", ApiKey::new("unused")));
        let a = pool
            .client("https://t1.example.com", &ApiKey::new("k1"))
            .unwrap();
        let b = pool
            .client("https://t1.example.com/api/", &ApiKey::new("k1"))
            .unwrap();
        let c = pool
            .client("https://t1.example.com", &ApiKey::new("k2"))
            .unwrap();
        let d = pool
            .client("https://t2.example.com", &ApiKey::new("k1"))
            .unwrap();
        assert!(Arc::ptr_eq(a.limiter(), b.limiter()));
        assert!(!Arc::ptr_eq(a.limiter(), c.limiter()));
        assert!(!Arc::ptr_eq(a.limiter(), d.limiter()));
        assert_eq!(pool.len(), 3);
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
            .client("https://t1.example.com:8443", &ApiKey::new("k1"))
            .unwrap();
        pool.client("https://t1.example.com:8443/api", &ApiKey::new("k1"))
            .unwrap();
        let seen = budgets.0.lock().unwrap().clone();
        // Created once, reported once per tier, before any request: the whole budget.
        assert_eq!(seen.len(), 2, "{seen:?}");
        for (caller, tier, budget) in &seen {
            assert_eq!(caller, a.caller());
            assert_eq!(caller.tenant, "t1.example.com:8443");
            assert!(!caller.identity.contains("k1"));
            let limit = if *tier == Tier::Tier2 { 7 } else { 1000 };
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

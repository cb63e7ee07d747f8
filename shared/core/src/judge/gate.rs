//! Per-tenant judge concurrency: one tenant's burst of plain-English checks may hold at most
//! VAULT_JUDGE_TENANT_CONCURRENCY model calls of this process, so the other tenants' work keeps moving.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Tenants remembered before idle ones (no call in flight) are forgotten.
const REMEMBERED_TENANTS: usize = 4096;

pub struct TenantGate {
    limit: usize,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl TenantGate {
    pub fn new(limit: usize) -> Self {
        TenantGate {
            limit: limit.max(1),
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Wait for one of the tenant's slots; the slot is held until the permit drops.
    pub async fn enter(&self, tenant_id: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut tenants = self
                .tenants
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if tenants.len() >= REMEMBERED_TENANTS && !tenants.contains_key(tenant_id) {
                let limit = self.limit;
                tenants.retain(|_, s| s.available_permits() < limit);
            }
            tenants
                .entry(tenant_id.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.limit)))
                .clone()
        };
        semaphore.acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_tenant_at_its_limit_waits_while_another_tenant_proceeds() {
        let gate = TenantGate::new(2);
        let first = gate.enter("busy").await;
        let second = gate.enter("busy").await;
        assert!(first.is_some() && second.is_some());
        let third = tokio::time::timeout(Duration::from_millis(50), gate.enter("busy")).await;
        assert!(third.is_err(), "a third call of the same tenant must wait");
        let other = tokio::time::timeout(Duration::from_millis(50), gate.enter("quiet")).await;
        assert!(
            matches!(other, Ok(Some(_))),
            "another tenant is not held up"
        );
        drop(first);
        let third = tokio::time::timeout(Duration::from_millis(50), gate.enter("busy")).await;
        assert!(matches!(third, Ok(Some(_))));
    }
}

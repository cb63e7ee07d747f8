//! Compiled policies are cached by version: a tenant's rules being re-read compiles only versions not seen
//! before; the per-tenant policy cap and `GET /policies` paging, in-process.

use ledgix_core::model::ClearanceRequest;
use ledgix_core::policy::PolicyRegistration;
use ledgix_core::roles::Role;
use ledgix_core::service::Principal;
use ledgix_core::{Vault, VaultError};
use ledgix_wiring::{build_embedded, Config};
use serde_json::json;
use std::sync::Arc;

async fn vault(max_policies: usize) -> (Arc<Vault>, Principal, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::from_lookup(|_| None, true).expect("defaults");
    config.data_dir = dir.path().to_path_buf();
    // Re-read the tenant's policies from the store on every clearance: only the version cache stays.
    config.policy_cache_ttl = std::time::Duration::ZERO;
    config.max_policies_per_tenant = max_policies;
    let embedded = build_embedded(&config, None).expect("vault");
    let api_key = ledgix_core::apikey::generate(ledgix_core::apikey::TENANT_KEY_PREFIX);
    let tenant = ledgix_core::model::Tenant {
        tenant_id: ledgix_core::apikey::new_id("tn_"),
        name: "t".into(),
        created_at: ledgix_core::model::now_rfc3339(),
    };
    embedded
        .vault
        .create_tenant_with_key(tenant, &api_key, Role::ALL.to_vec())
        .await
        .expect("tenant");
    let principal = embedded
        .vault
        .authenticate(&api_key)
        .await
        .expect("principal");
    (embedded.vault.clone(), principal, dir)
}

fn policy(id: &str, limit: u32) -> PolicyRegistration {
    PolicyRegistration {
        policy_id: id.into(),
        description: String::new(),
        rules: vec![],
        tools: vec!["pay".into()],
        rego: Some(format!(
            "package {id}\ndefault decision := \"deny\"\ndecision := \"approve\" if {{ input.tool_args.amount < {limit} }}"
        )),
    }
}

async fn clear(vault: &Vault, principal: &Principal) -> String {
    let request: ClearanceRequest = serde_json::from_value(json!({
        "tool_name": "pay", "tool_args": {"amount": 5}, "agent_id": "a", "session_id": "s"
    }))
    .expect("request");
    let view = vault
        .request_clearance(principal, request, None)
        .await
        .expect("decided");
    serde_json::to_value(&view).expect("json")["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn only_new_policy_versions_are_compiled() {
    let (vault, principal, _dir) = vault(200).await;
    vault
        .register_policy(&principal, policy("p1", 10), None)
        .await
        .expect("registered");
    assert_eq!(clear(&vault, &principal).await, "approved");
    assert_eq!(vault.policy_compilations(), 1);
    for _ in 0..3 {
        clear(&vault, &principal).await;
    }
    assert_eq!(
        vault.policy_compilations(),
        1,
        "re-reading the tenant's policies reuses the compiled version"
    );
    vault
        .register_policy(&principal, policy("p2", 100), None)
        .await
        .expect("registered");
    clear(&vault, &principal).await;
    assert_eq!(vault.policy_compilations(), 2, "only p2 is new");
    vault
        .register_policy(&principal, policy("p1", 3), None)
        .await
        .expect("new version");
    assert_eq!(
        clear(&vault, &principal).await,
        "denied",
        "the new version of p1 decides"
    );
    assert_eq!(
        vault.policy_compilations(),
        3,
        "only p1's new version is new"
    );
}

#[tokio::test]
async fn the_policy_cap_refuses_new_ids_but_not_new_versions_and_pages_list_them() {
    let (vault, principal, _dir) = vault(3).await;
    for id in ["a", "b", "c"] {
        vault
            .register_policy(&principal, policy(id, 10), None)
            .await
            .expect("under the cap");
    }
    match vault
        .register_policy(&principal, policy("d", 10), None)
        .await
    {
        Err(VaultError::PolicyLimitReached(3)) => {}
        other => panic!(
            "a fourth policy id must be refused, got {:?}",
            other.map(|r| r.1)
        ),
    }
    vault
        .register_policy(&principal, policy("a", 20), None)
        .await
        .expect("a new version of an existing policy is not a new policy");

    let first = vault
        .list_policies(&principal, Some(2), None)
        .await
        .expect("page");
    let ids: Vec<_> = first
        .policies
        .iter()
        .map(|p| p.policy_id.as_str())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    let second = vault
        .list_policies(&principal, Some(2), first.next.as_deref())
        .await
        .expect("page");
    let ids: Vec<_> = second
        .policies
        .iter()
        .map(|p| p.policy_id.as_str())
        .collect();
    assert_eq!(ids, ["c"]);
    assert_eq!(second.next, None);
    assert!(matches!(
        vault.list_policies(&principal, Some(201), None).await,
        Err(VaultError::InvalidRequest(_))
    ));
    assert!(matches!(
        vault.list_policies(&principal, Some(0), None).await,
        Err(VaultError::InvalidRequest(_))
    ));
    assert!(matches!(
        vault.list_policies(&principal, None, Some("%%%")).await,
        Err(VaultError::InvalidRequest(_))
    ));
}

//! Contract cases for API keys: roles and names are stored with the key, keys are listed per tenant, and a
//! tenant's own key-management answers never collide with administration answers.

use super::{idem, is_conflict, unique, Ports};
use crate::error::Conflict;
use crate::model::{now_rfc3339, ApiKeyRecord, Tenant};
use crate::roles::Role;

fn tenant() -> Tenant {
    Tenant {
        tenant_id: unique("tn"),
        name: "acme".into(),
        created_at: now_rfc3339(),
    }
}

fn key(tenant: &Tenant, id: &str, roles: Vec<Role>, name: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        key_id: format!("{id}-{}", tenant.tenant_id),
        tenant_id: tenant.tenant_id.clone(),
        key_hash: format!("hash-{id}-{}", tenant.tenant_id),
        created_at: now_rfc3339(),
        revoked: false,
        roles,
        name: name.into(),
    }
}

pub async fn keys_carry_roles_and_are_listed_per_tenant(p: Ports) {
    let (a, b) = (tenant(), tenant());
    let admin = key(&a, "admin", vec![Role::TenantAdmin], "first key");
    p.control
        .create_tenant(&a, &admin, None)
        .await
        .expect("tenant a");
    p.control
        .create_tenant(&b, &key(&b, "other", vec![Role::Agent], ""), None)
        .await
        .expect("tenant b");
    let agent = key(
        &a,
        "agent",
        vec![Role::Agent, Role::Consumer],
        "payments bot",
    );
    p.control
        .add_api_key(&agent, None)
        .await
        .expect("agent key");

    let found = p
        .control
        .api_key_by_hash(&agent.key_hash)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(found.roles, vec![Role::Agent, Role::Consumer]);
    assert_eq!(found.name, "payments bot");

    let listed = p.control.api_keys(&a.tenant_id).await.expect("list");
    let mut ids: Vec<_> = listed.iter().map(|k| k.key_id.clone()).collect();
    ids.sort();
    let mut expected = vec![admin.key_id.clone(), agent.key_id.clone()];
    expected.sort();
    assert_eq!(ids, expected, "only tenant a's keys");
    let listed_admin = listed
        .iter()
        .find(|k| k.key_id == admin.key_id)
        .expect("admin key listed");
    assert_eq!(listed_admin.roles, vec![Role::TenantAdmin]);

    assert!(p
        .control
        .revoke_api_key(&agent.key_id)
        .await
        .expect("revoke"));
    let listed = p.control.api_keys(&a.tenant_id).await.expect("list");
    assert!(
        listed.iter().any(|k| k.key_id == agent.key_id && k.revoked),
        "revoked keys stay listed, marked revoked"
    );
    assert!(p
        .control
        .api_keys("no-such-tenant")
        .await
        .expect("list")
        .is_empty());
}

pub async fn tenant_key_answers_are_kept_apart_from_admin_answers(p: Ports) {
    let a = tenant();
    p.control
        .create_tenant(&a, &key(&a, "admin", vec![Role::TenantAdmin], ""), None)
        .await
        .expect("tenant");
    let shared_key = unique("idem");
    let scope = format!("keys#{}", a.tenant_id);
    p.control
        .add_api_key(
            &key(&a, "k1", vec![Role::Agent], ""),
            Some(&idem(&scope, &shared_key)),
        )
        .await
        .expect("tenant answer");
    p.control
        .add_api_key(
            &key(&a, "k2", vec![Role::Agent], ""),
            Some(&idem("admin", &shared_key)),
        )
        .await
        .expect("the same key in the admin scope is another answer");
    let again = p
        .control
        .add_api_key(
            &key(&a, "k3", vec![Role::Agent], ""),
            Some(&idem(&scope, &shared_key)),
        )
        .await;
    assert!(is_conflict(&again, Conflict::IdempotencyKey), "{again:?}");
    for s in [scope.as_str(), "admin"] {
        let found = p
            .control
            .idempotency(s, &shared_key)
            .await
            .expect("read")
            .expect("recorded");
        assert_eq!(found.scope, s, "each scope reads its own answer");
    }
}

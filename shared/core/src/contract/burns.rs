//! The contract of token burns (`TenantStore::burn_jti`, `TenantStore::consume_answer`): a jti burns once,
//! with its consume answer or not at all, and consume answers are kept apart from ledger answers and tenants.

use super::{idem, is_conflict, unique, Ports};
use crate::error::{Conflict, StoreError};
use crate::ports::Write;

pub async fn jti_burns_exactly_once_under_concurrency(p: Ports) {
    let tenant = unique("t");
    let jti = unique("jti");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = p.store.clone();
        let (tenant, jti) = (tenant.clone(), jti.clone());
        tasks.push(tokio::spawn(async move {
            store.burn_jti(&tenant, &jti, 1, None).await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(Conflict::JtiBurned)) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(ok, 1, "exactly one burn wins");
}

/// Burn `jti` for `tenant`, with a consume answer under `key` when one is given.
pub(super) async fn burn(
    p: &Ports,
    tenant: &str,
    jti: &str,
    key: Option<&str>,
) -> Result<(), StoreError> {
    let answer = key.map(|key| idem(tenant, key));
    p.store.burn_jti(tenant, jti, 1, answer.as_ref()).await
}

/// The consume answer under `key`, as `(request_hash, status_code, response_body)`.
pub(super) async fn consume_answer(
    p: &Ports,
    tenant: &str,
    key: &str,
) -> Option<(String, u16, String)> {
    p.store
        .consume_answer(tenant, key)
        .await
        .expect("read")
        .map(|r| (r.request_hash, r.status_code, r.response_body))
}

pub async fn consume_answers_are_burned_with_the_jti_and_kept_apart(p: Ports) {
    let (tenant, other) = (unique("t"), unique("o"));
    let jti = unique("jti");
    let recorded = Some(("h".to_string(), 200, "{}".to_string()));
    burn(&p, &tenant, &jti, Some("c1"))
        .await
        .expect("first burn");
    assert_eq!(
        consume_answer(&p, &tenant, "c1").await,
        recorded,
        "the answer is recorded with the burn"
    );
    assert!(
        p.store
            .idempotency(&tenant, "c1")
            .await
            .expect("read")
            .is_none(),
        "a consume answer is not a ledger answer"
    );
    p.store
        .commit(&tenant, vec![Write::PutIdempotency(idem(&tenant, "k1"))])
        .await
        .expect("a ledger answer");
    assert_eq!(
        consume_answer(&p, &tenant, "k1").await,
        None,
        "nor a ledger answer a consume answer"
    );

    let again = burn(&p, &tenant, &jti, Some("c2")).await;
    assert!(
        is_conflict(&again, Conflict::JtiBurned),
        "a jti burns once: {again:?}"
    );
    assert_eq!(
        consume_answer(&p, &tenant, "c2").await,
        None,
        "the refused burn's answer is not recorded"
    );

    let fresh = unique("jti");
    let reused = burn(&p, &tenant, &fresh, Some("c1")).await;
    assert!(
        is_conflict(&reused, Conflict::IdempotencyKey),
        "a consume answer's key is recorded once: {reused:?}"
    );
    burn(&p, &tenant, &fresh, None)
        .await
        .expect("the refused burn burned nothing");
    let both = burn(&p, &tenant, &jti, Some("c1")).await;
    assert!(
        is_conflict(&both, Conflict::IdempotencyKey),
        "a retried consume is refused for its key, not its burn: {both:?}"
    );

    assert_eq!(
        consume_answer(&p, &other, "c1").await,
        None,
        "another tenant cannot read it"
    );
    let mut theirs = idem(&other, "c1");
    theirs.request_hash = "h-other".into();
    p.store
        .burn_jti(&other, &unique("jti"), 1, Some(&theirs))
        .await
        .expect("another tenant may use the same key");
    assert_eq!(
        consume_answer(&p, &other, "c1").await,
        Some(("h-other".to_string(), 200, "{}".to_string()))
    );
    assert_eq!(
        consume_answer(&p, &tenant, "c1").await,
        recorded,
        "each tenant reads its own"
    );
}

//! Rotation of temporary credentials and the TokenFailure refresh-and-retry.

use super::*;

// ---------------------------------------------------------------------------------------------
// Rotation and TokenFailure.

#[tokio::test(start_paused = true)]
async fn instance_role_credentials_rotate_while_polling_without_a_failed_poll() {
    let dir = temp_dir();
    let sim = sim();
    // Short-lived: 15 minutes, refreshed 5 minutes ahead, so every 10 minutes.
    sim.set_temporary_lifetime(Duration::from_secs(900));
    let all_types = "package_types = [\"traffic\", \"transcode\", \"co_anchoring\"]\n";
    let accounts = account(
        "cvm",
        &format!("credentials = \"cvm_role\"\nmetadata_endpoint = \"{METADATA}\""),
    );
    let config_poll = POLL.replace("package_types = [\"traffic\"]\n", all_types);
    let path = write(&dir, "config.toml", &format!("{config_poll}{accounts}"));
    let config = config::load(Some(&path), &Overrides::default(), BTreeMap::new()).unwrap();
    let shutdown = CancellationToken::new();
    let exporter = Exporter::start_with(
        &config,
        shutdown.clone(),
        Transport::service(sim.router()),
        None,
    );
    tokio::time::timeout(PATIENCE, exporter.wait_for_polls(1))
        .await
        .unwrap();
    assert_eq!(
        sim.credential_requests()
            .iter()
            .filter(|r| r.service == "metadata:credentials")
            .count(),
        1,
        "three pollers, one fetch (single-flight)"
    );

    // Three hours of polling every 5 minutes, across 17 rotations.
    let hours = 3;
    for _ in 0..(hours * 12) {
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert!(exporter.all_up(), "{:?}", exporter.store().pairs());
    }
    shutdown.cancel();

    let log = sim.requests();
    assert!(log.len() >= 3 * hours * 12, "{} calls", log.len());
    let failed: Vec<_> = log.iter().filter(|r| r.outcome != "ok").collect();
    assert!(failed.is_empty(), "failed calls: {failed:?}");
    let issued = sim.issued_credentials();
    assert!(
        (17..=20).contains(&issued.len()),
        "one fetch per 10 minutes: {}",
        issued.len()
    );
    // Every call used credentials issued before it, not yet expired, and refreshed early: none
    // used within its last 5 minutes.
    for r in &log {
        let c = issued
            .iter()
            .find(|c| Some(&c.secret_id) == r.secret_id.as_ref())
            .expect("signed with issued credentials");
        assert!(
            c.issued_at <= r.at
                && r.at < c.expires_at - Duration::from_secs(300) + Duration::from_millis(1)
        );
    }
    let ids: std::collections::BTreeSet<_> =
        log.iter().filter_map(|r| r.secret_id.clone()).collect();
    assert!(
        ids.len() >= 17,
        "the credentials in use rotated: {}",
        ids.len()
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_gets_one_refresh_and_one_retry() {
    let dir = temp_dir();
    let rig = Rig::start(
        sim(),
        &dir,
        &account(
            "cvm",
            &format!(
                "credentials = \"cvm_role\"\nrole = \"{CVM_ROLE}\"\nmetadata_endpoint = \"{METADATA}\""
            ),
        ),
        BTreeMap::new(),
    );
    rig.first_polls().await;
    assert_eq!(rig.credential_fetches("metadata:credentials"), 1);

    // Revoked before their time: the API says AuthFailure.TokenFailure; new ones work.
    rig.sim.revoke_temporary_credentials();
    let calls = rig.sim.requests().len();
    rig.poll_now().await;
    let m = rig.scrape().await;
    assert_eq!(m.value(&up("cvm")), 1.0, "{:?}", rig.last_error("cvm"));
    assert_eq!(m.value(&errors("cvm", "AuthFailure.TokenFailure")), 1.0);
    assert_eq!(
        rig.sim.requests().len() - calls,
        2,
        "the call and one retry"
    );
    assert_eq!(
        rig.credential_fetches("metadata:credentials"),
        2,
        "one refresh"
    );
    assert_eq!(ids(&m, "cvm"), expected("b", 3));

    // Refused again after the refresh: no second refresh, the poll fails.
    rig.sim.set_persistent_fault(
        BASE.0,
        Some(Fault::ApiError("AuthFailure.TokenFailure".into())),
    );
    let calls = rig.sim.requests().len();
    rig.poll_now().await;
    let m = rig.scrape().await;
    assert_eq!(m.value(&up("cvm")), 0.0);
    assert_eq!(rig.sim.requests().len() - calls, 2);
    assert_eq!(rig.credential_fetches("metadata:credentials"), 3);
    assert_eq!(m.value(&errors("cvm", "AuthFailure.TokenFailure")), 3.0);
    rig.sim.set_persistent_fault(BASE.0, None);
    rig.poll_now().await;
    assert_eq!(rig.scrape().await.value(&up("cvm")), 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_the_valid_credentials_until_they_expire() {
    let dir = temp_dir();
    let sim = sim();
    sim.set_temporary_lifetime(Duration::from_secs(900));
    let rig = Rig::start(
        sim,
        &dir,
        &account(
            "cvm",
            &format!(
                "credentials = \"cvm_role\"\nrole = \"{CVM_ROLE}\"\nmetadata_endpoint = \"{METADATA}\""
            ),
        ),
        BTreeMap::new(),
    );
    let (logs, _guard) = Logs::capture(tracing::Level::WARN);
    rig.first_polls().await;
    rig.sim.set_metadata_fault(Some(MetadataFault::Unavailable));
    // Scrapes a second after each scheduled poll.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Refresh due at 10 minutes fails; the credentials work until 15 minutes (less the margin).
    for minute in [5, 10] {
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(rig.scrape().await.value(&up("cvm")), 1.0, "minute {minute}");
    }
    let text = logs.text();
    assert!(
        text.contains("refreshing credentials failed, still using the current ones")
            && text.contains("HTTP 503"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_secs(300)).await;
    let m = rig.scrape().await;
    assert_eq!(m.value(&up("cvm")), 0.0, "expired at 15 minutes");
    let e = poll_failed_warning(&logs);
    assert!(
        e.contains("credential source cvm_role") && e.contains("HTTP 503"),
        "{e}"
    );
    rig.sim.set_metadata_fault(None);
    rig.poll_now().await;
    assert_eq!(rig.scrape().await.value(&up("cvm")), 1.0);
}

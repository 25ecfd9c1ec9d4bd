//! The tier's Redis operations against a real `redis-server`: leases, fencing, write-backs,
//! the build's unchanged pages, tag sets.

use super::*;
use crate::store::Etag;
use isr_tests::redis::Redis;
use std::time::Duration;

fn tier(redis: &Redis) -> Arc<RedisTier> {
    let mut options = SharedOptions::new(&redis.url(), "t");
    options.lease_ttl = Duration::from_secs(2);
    RedisTier::connect(options).unwrap()
}

fn key(path: &str) -> PageKey {
    crate::route::test_key(path)
}

fn page(
    path: &str,
    generated_at_ms: u64,
    html: &'static str,
    tags: &[&str],
) -> (PageMeta, Variants) {
    let body = Variants::compress(Bytes::from_static(html.as_bytes()));
    let meta = PageMeta {
        key: path.into(),
        route: "/p/:id".into(),
        generated_at_ms,
        generation: 0,
        kind: PageKind::Page {
            etag: Etag::of(html.as_bytes()),
            bytes: html.len() as u64,
        },
        tags: tags.iter().map(|t| t.to_string()).collect(),
        valid_until_ms: None,
        mark: None,
    };
    (meta, body)
}

async fn lead(tier: &Arc<RedisTier>, path: &str) -> (Lease, u64) {
    match tier.clone().acquire(&key(path)).await.unwrap() {
        Acquired::Lead {
            lease,
            stored_generation,
        } => (lease, stored_generation),
        Acquired::Held { .. } => panic!("the lease of {path} is held"),
    }
}

#[tokio::test]
async fn one_lease_at_a_time_and_only_its_holder_releases_it() {
    let redis = Redis::start();
    let tier = tier(&redis);
    let (lease, stored) = lead(&tier, "/p/1").await;
    assert_eq!(stored, 0, "nothing stored yet");
    assert!(matches!(
        tier.clone().acquire(&key("/p/1")).await.unwrap(),
        Acquired::Held { .. }
    ));
    // A stale holder's release (an old token) leaves the lease alone.
    tier.release(&key("/p/1"), lease.token() + 100)
        .await
        .unwrap();
    assert!(tier.lease_held(&key("/p/1")).await.unwrap());
    let token = lease.token();
    drop(lease);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while tier.lease_held(&key("/p/1")).await.unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "dropping the lease released it"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (next, _) = lead(&tier, "/p/1").await;
    assert!(next.token() > token, "fencing tokens grow");
}

#[tokio::test]
async fn an_older_token_is_fenced_and_generations_only_grow() {
    let redis = Redis::start();
    let tier = tier(&redis);
    let (old_lease, _) = lead(&tier, "/p/2").await;
    // The old holder's lease expires; another instance takes a newer one and commits.
    tier.release(&key("/p/2"), old_lease.token()).await.unwrap();
    let (new_lease, _) = lead(&tier, "/p/2").await;
    let (meta, body) = page("/p/2", 5_000, "<p>new</p>", &[]);
    let written = tier
        .commit(
            new_lease.token(),
            &meta,
            Some(&body),
            false,
            Duration::ZERO,
            0,
        )
        .await
        .unwrap();
    assert_eq!(
        written,
        Commit::Written {
            generation: 1,
            mark: None
        }
    );
    new_lease.released_by_commit();
    // The old holder's late commit, even with a later clock, is refused.
    let (meta, body) = page("/p/2", 9_000, "<p>old</p>", &[]);
    let late = tier
        .commit(
            old_lease.token(),
            &meta,
            Some(&body),
            false,
            Duration::ZERO,
            0,
        )
        .await
        .unwrap();
    assert_eq!(
        late,
        Commit::Rejected {
            stored_generation: 1
        }
    );
    let stored = tier.pull(&key("/p/2")).await.unwrap().unwrap();
    assert_eq!(&stored.body.unwrap().identity[..], b"<p>new</p>");
    assert_eq!(stored.meta.generation, 1);
    // Its age is Redis's own measure (just committed), whatever clock the committer had.
    assert!(
        stored.age.unwrap() < std::time::Duration::from_secs(5),
        "{:?}",
        stored.age
    );
    // A holder whose clock is behind gets the next generation all the same: a counter.
    let (lease, stored_generation) = lead(&tier, "/p/2").await;
    assert_eq!(stored_generation, 1);
    let (meta, body) = page("/p/2", 1_000, "<p>newer</p>", &[]);
    let written = tier
        .commit(lease.token(), &meta, Some(&body), false, Duration::ZERO, 0)
        .await
        .unwrap();
    assert_eq!(
        written,
        Commit::Written {
            generation: 2,
            mark: None
        }
    );
}

/// A write-back (a page made while Redis was down) replaces only the version it was made
/// over: when another instance committed meanwhile, that version stays, whatever the clocks.
#[tokio::test]
async fn a_write_back_is_taken_only_over_the_version_it_replaced() {
    let redis = Redis::start();
    let tier = tier(&redis);
    let (lease, _) = lead(&tier, "/p/3").await;
    let (meta, body) = page("/p/3", 7_000, "<p>with lease</p>", &[]);
    tier.commit(lease.token(), &meta, Some(&body), false, Duration::ZERO, 0)
        .await
        .unwrap();
    // Made over no version (generation 0), with a later clock: another commit came first.
    let (meta, body) = page("/p/3", 9_000, "<p>made over nothing</p>", &[]);
    // (A write-back refused: the stored generation 1 is newer than the 0 it was made over.)
    assert_eq!(
        tier.commit(0, &meta, Some(&body), false, Duration::ZERO, 0)
            .await
            .unwrap(),
        Commit::Rejected {
            stored_generation: 1
        }
    );
    // Made over generation 1, with an earlier clock: it is the next version.
    let (mut meta, body) = page("/p/3", 6_000, "<p>made over 1</p>", &[]);
    meta.generation = 1;
    assert_eq!(
        tier.commit(0, &meta, Some(&body), false, Duration::ZERO, 0)
            .await
            .unwrap(),
        Commit::Written {
            generation: 2,
            mark: None
        }
    );
}

/// After Redis lost its data (a flush, a new server), a page's next version is still newer than
/// what every instance holds (generations continue from the version it replaced), and a
/// write-back of a page made during the outage is dated by its own age, not by when Redis
/// came back.
#[tokio::test]
async fn after_redis_lost_its_data_generations_go_on_and_write_backs_keep_their_age() {
    let redis = Redis::start();
    let tier = tier(&redis);
    let (mut meta, body) = page("/p/8", 1_000, "<p>made during the outage</p>", &[]);
    meta.generation = 5; // what the instances held before Redis lost it
    let written = tier
        .commit(0, &meta, Some(&body), false, Duration::from_secs(60), 0)
        .await
        .unwrap();
    assert_eq!(
        written,
        Commit::Written {
            generation: 6,
            mark: None
        }
    );
    let pulled = tier.pull(&key("/p/8")).await.unwrap().unwrap();
    let age = pulled.age.unwrap();
    assert!(
        age >= Duration::from_secs(60) && age < Duration::from_secs(65),
        "{age:?}"
    );
    let (lease, stored) = lead(&tier, "/p/8").await;
    assert_eq!(stored, 6);
    let (mut meta, body) = page("/p/8", 2_000, "<p>next</p>", &[]);
    meta.generation = 6;
    let written = tier
        .commit(lease.token(), &meta, Some(&body), false, Duration::ZERO, 0)
        .await
        .unwrap();
    assert_eq!(
        written,
        Commit::Written {
            generation: 7,
            mark: None
        }
    );
}

#[tokio::test]
async fn the_build_keeps_the_generation_of_unchanged_content() {
    let redis = Redis::start();
    let tier = tier(&redis);
    let (lease, _) = lead(&tier, "/p/4").await;
    let (meta, body) = page("/p/4", 1_000, "<p>same</p>", &[]);
    tier.commit(lease.token(), &meta, Some(&body), true, Duration::ZERO, 0)
        .await
        .unwrap();
    let (lease, _) = lead(&tier, "/p/4").await;
    let (meta, body) = page("/p/4", 2_000, "<p>same</p>", &[]);
    assert_eq!(
        tier.commit(lease.token(), &meta, Some(&body), true, Duration::ZERO, 0)
            .await
            .unwrap(),
        Commit::Unchanged {
            stored_generation: 1
        }
    );
    lease.released_by_commit();
    assert!(
        !tier.lease_held(&key("/p/4")).await.unwrap(),
        "released by the commit"
    );
    let (lease, _) = lead(&tier, "/p/4").await;
    let (meta, body) = page("/p/4", 3_000, "<p>changed</p>", &[]);
    assert_eq!(
        tier.commit(lease.token(), &meta, Some(&body), true, Duration::ZERO, 0)
            .await
            .unwrap(),
        Commit::Written {
            generation: 2,
            mark: None
        }
    );
}

#[tokio::test]
async fn tag_sets_follow_each_commit() {
    let redis = Redis::start();
    let tier = tier(&redis);
    for (path, tags) in [("/p/5", &["a", "b"][..]), ("/p/6", &["b"][..])] {
        let (lease, _) = lead(&tier, path).await;
        let (meta, body) = page(path, 1_000, "<p>x</p>", tags);
        tier.commit(lease.token(), &meta, Some(&body), false, Duration::ZERO, 0)
            .await
            .unwrap();
    }
    assert_eq!(tier.keys_with_tag("a", usize::MAX).await.unwrap(), ["/p/5"]);
    assert_eq!(
        tier.keys_with_tag("b", usize::MAX).await.unwrap(),
        ["/p/5", "/p/6"]
    );
    // /p/5 loses tag a and gains c.
    let (lease, _) = lead(&tier, "/p/5").await;
    let (meta, body) = page("/p/5", 2_000, "<p>y</p>", &["b", "c"]);
    tier.commit(lease.token(), &meta, Some(&body), false, Duration::ZERO, 0)
        .await
        .unwrap();
    assert!(tier
        .keys_with_tag("a", usize::MAX)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(tier.keys_with_tag("c", usize::MAX).await.unwrap(), ["/p/5"]);
    assert_eq!(
        tier.keys_with_tag("b", 1).await.unwrap().len(),
        1,
        "bounded by the limit"
    );
}

#[tokio::test]
async fn a_dead_redis_opens_the_breaker_and_calls_fail_fast() {
    let mut redis = Redis::start();
    let tier = tier(&redis);
    assert!(tier
        .generations(&[key("/p/7")], REQUEST_TIMEOUT)
        .await
        .is_ok());
    redis.stop();
    for _ in 0..TRIP_AFTER {
        assert!(tier
            .generations(&[key("/p/7")], REQUEST_TIMEOUT)
            .await
            .is_err());
    }
    assert!(!tier.is_up());
    let error = tier.clone().acquire(&key("/p/7")).await.err().unwrap();
    // Refused without a network call: only the open breaker answers `NotConnected` (a call
    // that went out fails `Other`, or `TimedOut` after REQUEST_TIMEOUT), whatever the time.
    assert_eq!(error.kind(), io::ErrorKind::NotConnected, "{error}");
    assert!(error.to_string().contains("circuit open"), "{error}");
}

//! A model test: random puts (some aborted), lookups, purges and restarts against a map.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Put {
        primary: u8,
        variance: Option<u8>,
        len: usize,
        abort: bool,
    },
    Lookup {
        primary: u8,
        variance: Option<u8>,
    },
    Purge {
        primary: u8,
        variance: Option<u8>,
        eviction: bool,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let target = (0..3u8, proptest::option::of(0..2u8));
    prop_oneof![
        4 => (target.clone(), 0..40usize, proptest::bool::weighted(0.2)).prop_map(
            |((primary, variance), len, abort)| Op::Put {
                primary,
                variance,
                len,
                abort
            }
        ),
        4 => target
            .clone()
            .prop_map(|(primary, variance)| Op::Lookup { primary, variance }),
        2 => (target, any::<bool>()).prop_map(|((primary, variance), eviction)| Op::Purge {
            primary,
            variance,
            eviction
        }),
        1 => Just(Op::Reopen),
    ]
}

fn key_of(primary: u8, variance: Option<u8>) -> CacheKey {
    match variance {
        Some(v) => variant(&primary.to_string(), &v.to_string()),
        None => key(&primary.to_string()),
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let options = DiskCacheOptions::default().fsync(FsyncPolicy::Never);
    let (mut cache, _) = open_with(dir.path(), options.clone()).await;
    let trace = SpanHandle::default();
    let mut model: HashMap<(u8, Option<u8>), Vec<u8>> = HashMap::new();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Put {
                primary,
                variance,
                len,
                abort,
            } => {
                let body = vec![step as u8; len];
                let k = key_of(primary, variance);
                let mut miss = cache
                    .get_miss_handler(&k, &meta("p"), &trace)
                    .await
                    .unwrap();
                if abort {
                    miss.write_body(Bytes::from(body), false).await.unwrap();
                    drop(miss);
                } else {
                    miss.write_body(Bytes::from(body.clone()), true)
                        .await
                        .unwrap();
                    miss.finish().await.unwrap();
                    model.insert((primary, variance), body);
                }
            }
            Op::Lookup { primary, variance } => {
                let found = body_of(cache, &key_of(primary, variance)).await;
                prop_assert_eq!(found.as_ref(), model.get(&(primary, variance)));
            }
            Op::Purge {
                primary,
                variance,
                eviction,
            } => {
                let kind = if eviction {
                    PurgeType::Eviction
                } else {
                    PurgeType::Invalidation
                };
                let k = key_of(primary, variance).to_compact();
                let removed = cache.purge(&k, kind, &trace).await.unwrap();
                let before = model.len();
                if variance.is_none() && !eviction {
                    model.retain(|(p, _), _| *p != primary);
                } else {
                    model.remove(&(primary, variance));
                }
                prop_assert_eq!(removed, model.len() != before);
            }
            Op::Reopen => {
                let (reopened, stats) = open_with(dir.path(), options.clone()).await;
                prop_assert_eq!(stats.kept, model.len());
                prop_assert_eq!(stats.discarded, 0);
                cache = reopened;
            }
        }
        prop_assert_eq!(cache.len(), model.len());
    }
    let sizes: usize = model
        .keys()
        .map(|(p, v)| cache.object_size(&key_of(*p, *v).to_compact()).unwrap())
        .sum();
    prop_assert_eq!(cache.used_bytes(), sizes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn behaves_like_a_map_across_restarts(ops in proptest::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(ops))?;
    }
}

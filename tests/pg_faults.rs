//! Network faults on real PostgreSQL: a TCP proxy in front of one shard that stops forwarding
//! (a black hole). Queries to that shard time out as configured, naming it; the others are
//! unaffected.

#[path = "common/pg.rs"]
mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use grant::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "fault_items")]
#[shard(strategy = "hash", on = "id", count = 2)]
struct Item {
    #[primary_key]
    id: i64,
    label: String,
}

/// Forwards TCP to `target` until `hole` is set; then swallows every byte in both directions
/// and keeps the connections open, like a dead network path.
async fn black_hole_proxy(target: u16, hole: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let hole = hole.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let h1 = hole.clone();
                let up = tokio::spawn(async move {
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if !h1.load(Ordering::SeqCst) && sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let mut buf = [0u8; 8192];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if !hole.load(Ordering::SeqCst) && cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = up.await;
            });
        }
    });
    port
}

/// `postgres://user@host:PORT/db?x` → (`postgres://user@host`, (`PORT`, `/db?x`)).
fn split_port(url: &str) -> (&str, (&str, &str)) {
    let host_start = url.find('@').map_or(url.find("//").unwrap() + 2, |i| i + 1);
    let path = url[host_start..]
        .find('/')
        .map_or(url.len(), |i| host_start + i);
    let colon = url[host_start..path]
        .rfind(':')
        .map(|i| host_start + i)
        .expect("url has a port");
    (&url[..colon], (&url[colon + 1..path], &url[path..]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_shard_times_out_by_name_and_the_other_serves() {
    let Some(env) = pg::env().await else { return };
    let a = env
        .create_database(&pg::database_name("black_hole", "shard_0"))
        .await
        .unwrap();
    let b = env
        .create_database(&pg::database_name("black_hole", "shard_1"))
        .await
        .unwrap();
    // Route shard_1 through the proxy: same server, same database, one more hop.
    let (before, after) = split_port(&b);
    let target: u16 = after.0.parse().unwrap();
    let hole = Arc::new(AtomicBool::new(false));
    let proxy = black_hole_proxy(target, hole.clone()).await;
    let proxied = format!("{before}:{proxy}{}", after.1);
    let cluster = Cluster::<Postgres>::builder()
        .shard("shard_0", a)
        .shard("shard_1", proxied)
        .timeout(Duration::from_millis(700))
        .acquire_timeout(Duration::from_millis(700))
        .connect()
        .await
        .unwrap();
    Item::create_table(&cluster).await.unwrap();
    let rows: Vec<Item> = (1..=100)
        .map(|id| Item {
            id,
            label: format!("item {id}"),
        })
        .collect();
    Item::insert_many(&cluster, &rows).await.unwrap();
    let on = |shard: u32| {
        (1..)
            .find(|id| Item::shard_for(id).index() == shard)
            .unwrap()
    };

    hole.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let err = Item::find(&cluster, on(1)).await.unwrap_err();
    let took = started.elapsed();
    match &err {
        Error::Timeout { model, shards, .. } => {
            assert_eq!(*model, "Item");
            assert!(shards.contains("shard_1"), "{err}");
        }
        other => panic!("expected Timeout, got {other}"),
    }
    assert!(
        took < Duration::from_secs(3),
        "timed out after {took:?}, not ~700 ms"
    );

    // The healthy shard keeps serving, alone and inside a scatter that names the dead one.
    assert!(Item::find(&cluster, on(0)).await.unwrap().is_some());
    let err = Item::on_all_shards()
        .timeout(Duration::from_millis(700))
        .count(&cluster)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { shards, .. } if shards.contains("shard_1")),
        "{err}"
    );
    let partial = Item::on_all_shards()
        .timeout(Duration::from_millis(700))
        .allow_partial()
        .count(&cluster)
        .await
        .unwrap();
    let on_0 = (1..=100)
        .filter(|id| Item::shard_for(id).index() == 0)
        .count() as u64;
    assert_eq!(partial.value, on_0);
    assert_eq!(partial.failed.len(), 1);
    assert_eq!(partial.failed[0].0, ShardId::new(1));
}

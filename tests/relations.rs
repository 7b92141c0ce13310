//! Co-located relations on SQLite shard files and PostgreSQL shard databases: an issue
//! tracker's comments `belongs_to` their issue and their author, all sharded by tenant. A
//! parent's children are one routed statement on the parent's shard; the children of many
//! parents one statement per shard. Answers are compared with the rows as generated (the
//! oracle: filtering and sorting them in memory), the statements with the query log.

#[path = "common/pg.rs"]
mod pg;
#[path = "common/rng.rs"]
mod rng;
#[path = "common/sides.rs"]
#[macro_use]
mod sides;

use std::collections::BTreeSet;

use grant::FromShardRow;
use grant::prelude::*;
use sides::Side;

/// A user of a tenant.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "members")]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Member {
    /// The tenant (the shard key).
    #[primary_key]
    pub tenant_id: i64,
    /// The member, within the tenant.
    #[primary_key]
    pub id: i64,
    /// Shown beside comments.
    pub name: String,
}

/// An issue of a tenant.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "tickets")]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Ticket {
    /// The tenant (the shard key).
    #[primary_key]
    pub tenant_id: i64,
    /// The issue, within the tenant.
    #[primary_key]
    pub id: i64,
    /// Its title.
    pub title: String,
}

/// A comment on an issue, by a member: placed with both.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "remarks")]
#[grant(
    belongs_to(Ticket, key(tenant_id, ticket_id)),
    // Strings name fields too: clippy's `duplicated_attributes` would flag a second
    // `tenant_id` identifier in one attribute.
    belongs_to(Member, key("tenant_id", "author_id")),
    index(tenant_id, ticket_id)
)]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Remark {
    /// The tenant (the shard key).
    #[primary_key]
    pub tenant_id: i64,
    /// The comment, within the tenant.
    #[primary_key]
    pub id: i64,
    /// The issue commented on.
    pub ticket_id: i64,
    /// Who wrote it.
    pub author_id: i64,
    /// What it says.
    pub body: String,
}

/// 12 tenants, each with members and issues; comments on random issues by random members.
fn data(seed: u64) -> (Vec<Member>, Vec<Ticket>, Vec<Remark>) {
    let mut rng = rng::Rng(seed);
    let mut members = Vec::new();
    let mut tickets = Vec::new();
    let mut remarks = Vec::new();
    for tenant_id in 1..=12 {
        let m = 1 + rng.below(6) as i64;
        let t = 1 + rng.below(10) as i64;
        for id in 1..=m {
            members.push(Member {
                tenant_id,
                id,
                name: format!("member {tenant_id}/{id}"),
            });
        }
        for id in 1..=t {
            tickets.push(Ticket {
                tenant_id,
                id,
                title: format!("issue {tenant_id}/{id}"),
            });
        }
        for id in 1..=(rng.below(40) as i64) {
            remarks.push(Remark {
                tenant_id,
                id,
                ticket_id: 1 + rng.below(t as u64) as i64,
                author_id: 1 + rng.below(m as u64) as i64,
                body: format!("remark {id}"),
            });
        }
    }
    (members, tickets, remarks)
}

on_both!("relations_", children_of_one_and_of_many_parents);
async fn children_of_one_and_of_many_parents<S: Side>(side: &S)
where
    Remark: FromShardRow<S::DB>,
{
    let cluster = side.cluster(4).await;
    Member::create_table(&cluster).await.unwrap();
    Ticket::create_table(&cluster).await.unwrap();
    Remark::create_table(&cluster).await.unwrap();
    let (members, tickets, remarks) = data(0x5eed);
    Member::insert_many(&cluster, &members).await.unwrap();
    Ticket::insert_many(&cluster, &tickets).await.unwrap();
    Remark::insert_many(&cluster, &remarks).await.unwrap();
    let oracle = |tenant: i64, ticket: i64| -> Vec<Remark> {
        let mut v: Vec<Remark> = remarks
            .iter()
            .filter(|r| r.tenant_id == tenant && r.ticket_id == ticket)
            .cloned()
            .collect();
        v.sort_by_key(|r| (r.tenant_id, r.id));
        v
    };

    // One parent: one statement, on its shard.
    let ticket = &tickets[3];
    cluster.log().start();
    let mut got = Remark::belonging_to(ticket).all(&cluster).await.unwrap();
    let sent = cluster.log().stop();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].shard, Ticket::shard_for(&ticket.tenant_id).name());
    got.sort_by_key(|r| (r.tenant_id, r.id));
    assert_eq!(got, oracle(ticket.tenant_id, ticket.id));
    // It is a query like any other: filtered, ordered, counted.
    let n = Remark::belonging_to(ticket)
        .filter(Remark::ID.gt(5))
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(
        n,
        oracle(ticket.tenant_id, ticket.id)
            .iter()
            .filter(|r| r.id > 5)
            .count() as u64
    );

    // Every issue: one statement per shard, each parent's comments in primary-key order.
    cluster.log().start();
    let each = Remark::belonging_to_each(&cluster, &tickets).await.unwrap();
    let sent = cluster.log().stop();
    let shards: BTreeSet<String> = tickets
        .iter()
        .map(|t| Ticket::shard_for(&t.tenant_id).name().to_string())
        .collect();
    assert_eq!(sent.len(), shards.len(), "{sent:?}");
    assert_eq!(
        sent.iter()
            .map(|s| s.shard.to_string())
            .collect::<BTreeSet<_>>(),
        shards
    );
    assert_eq!(each.len(), tickets.len());
    for (t, got) in tickets.iter().zip(&each) {
        assert_eq!(
            *got,
            oracle(t.tenant_id, t.id),
            "issue {}/{}",
            t.tenant_id,
            t.id
        );
    }
    assert_eq!(
        each.iter().map(Vec::len).sum::<usize>(),
        remarks.len(),
        "every comment belongs to exactly one issue"
    );

    // The other parent: each member's comments; a parent listed twice gets them twice, a
    // parent without children an empty list, no parent no statement.
    let picked = vec![members[0].clone(), members[0].clone(), members[5].clone()];
    let by_author = Remark::belonging_to_each(&cluster, &picked).await.unwrap();
    for (m, got) in picked.iter().zip(&by_author) {
        let mut want: Vec<Remark> = remarks
            .iter()
            .filter(|r| r.tenant_id == m.tenant_id && r.author_id == m.id)
            .cloned()
            .collect();
        want.sort_by_key(|r| (r.tenant_id, r.id));
        assert_eq!(*got, want);
    }
    let nobody = Member {
        tenant_id: 99,
        id: 1,
        name: "nobody".into(),
    };
    assert_eq!(
        Remark::belonging_to_each(&cluster, &[nobody])
            .await
            .unwrap(),
        vec![Vec::<Remark>::new()]
    );
    cluster.log().start();
    assert!(
        Remark::belonging_to_each(&cluster, &Vec::<Member>::new())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(cluster.log().stop().is_empty());
}

on_both!(
    "relations_",
    joins_run_on_each_shard_and_merge_like_any_query
);
async fn joins_run_on_each_shard_and_merge_like_any_query<S: Side>(side: &S)
where
    Remark: FromShardRow<S::DB>,
    Member: FromShardRow<S::DB>,
    Ticket: FromShardRow<S::DB>,
{
    let cluster = side.cluster(4).await;
    Member::create_table(&cluster).await.unwrap();
    Ticket::create_table(&cluster).await.unwrap();
    Remark::create_table(&cluster).await.unwrap();
    let (mut members, tickets, remarks) = data(0xc0ffee);
    // One author left: their comments stay, without an author (a left join).
    let gone = members.remove(2);
    Member::insert_many(&cluster, &members).await.unwrap();
    Ticket::insert_many(&cluster, &tickets).await.unwrap();
    Remark::insert_many(&cluster, &remarks).await.unwrap();
    let author = |r: &Remark| {
        members
            .iter()
            .find(|m| m.tenant_id == r.tenant_id && m.id == r.author_id)
            .cloned()
    };
    assert!(
        remarks.iter().any(|r| author(r).is_none()),
        "an orphan exists"
    );

    // An issue page: its newest five comments with their authors, one statement.
    let ticket = tickets
        .iter()
        .max_by_key(|t| {
            remarks
                .iter()
                .filter(|r| r.tenant_id == t.tenant_id && r.ticket_id == t.id)
                .count()
        })
        .unwrap();
    cluster.log().start();
    let page = Remark::belonging_to(ticket)
        .order_by(Remark::ID, Order::Desc)
        .limit(5)
        .join_parent::<Member>()
        .all(&cluster)
        .await
        .unwrap();
    let sent = cluster.log().stop();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let mut want: Vec<Remark> = remarks
        .iter()
        .filter(|r| r.tenant_id == ticket.tenant_id && r.ticket_id == ticket.id)
        .cloned()
        .collect();
    want.sort_by_key(|r| std::cmp::Reverse(r.id));
    want.truncate(5);
    assert!(want.len() >= 3, "the page has rows: {}", want.len());
    let want: Vec<(Remark, Option<Member>)> = want
        .into_iter()
        .map(|r| {
            let a = author(&r);
            (r, a)
        })
        .collect();
    assert_eq!(page, want);

    // Across every shard: ordered by text (byte order), paged with an offset, merged.
    let got = Remark::on_all_shards()
        .order_by(Remark::BODY, Order::Asc)
        .order_by(Remark::TENANT_ID, Order::Desc)
        .offset(7)
        .limit(40)
        .join_parent::<Member>()
        .all(&cluster)
        .await
        .unwrap();
    let mut want: Vec<Remark> = remarks.clone();
    want.sort_by(|a, b| {
        a.body
            .as_bytes()
            .cmp(b.body.as_bytes())
            .then(b.tenant_id.cmp(&a.tenant_id))
            .then(a.id.cmp(&b.id))
    });
    let want: Vec<(Remark, Option<Member>)> = want
        .into_iter()
        .skip(7)
        .take(40)
        .map(|r| {
            let a = author(&r);
            (r, a)
        })
        .collect();
    assert_eq!(got, want);
    assert!(got.iter().all(|(r, m)| {
        m.as_ref()
            .is_none_or(|m| m.tenant_id == r.tenant_id && m.id == r.author_id)
    }));

    // The other parent, filtered on the child's columns: every comment of the gone author's
    // tenant, each with its issue.
    let mut got = Remark::query()
        .filter(Remark::TENANT_ID.eq(gone.tenant_id))
        .join_parent::<Ticket>()
        .all(&cluster)
        .await
        .unwrap();
    // No order asked for: any order is right, as in one database.
    got.sort_by_key(|(r, _)| (r.tenant_id, r.id));
    let mut want: Vec<(Remark, Option<Ticket>)> = remarks
        .iter()
        .filter(|r| r.tenant_id == gone.tenant_id)
        .map(|r| {
            let t = tickets
                .iter()
                .find(|t| t.tenant_id == r.tenant_id && t.id == r.ticket_id)
                .cloned();
            (r.clone(), t)
        })
        .collect();
    want.sort_by_key(|(r, _)| (r.tenant_id, r.id));
    assert_eq!(got, want);
    assert!(got.iter().all(|(_, t)| t.is_some()));
}

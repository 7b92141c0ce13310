//! How a model's rows are spread over its shards: `cluster.distribution::<M>()`.
//!
//! Counts the rows of the model's table on every shard the model uses (one `COUNT(*)` per shard,
//! shards in parallel) and reports them with their mean and standard deviation — to check a
//! strategy spreads the data as intended, to spot a hot shard, or to watch a rebalance.

use std::fmt;

use futures_util::future::try_join_all;
use grant_core::{Backend, Model, Result, ShardId};

use crate::cluster::Cluster;
use crate::query::Query;

/// The rows of one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardRows {
    /// The shard.
    pub shard: ShardId,
    /// The rows of the model's table on it.
    pub rows: u64,
}

/// Rows per shard of one model, with summary statistics.
///
/// # Examples
///
/// ```
/// use grant_core::ShardId;
/// use grant_sharding::distribution::{Distribution, ShardRows};
///
/// let d = Distribution::new("User", vec![
///     ShardRows { shard: ShardId::new(0), rows: 90 },
///     ShardRows { shard: ShardId::new(1), rows: 110 },
/// ]);
/// assert_eq!(d.total(), 200);
/// assert_eq!(d.mean(), 100.0);
/// assert_eq!(d.std_dev(), 10.0);
/// assert_eq!(d.max_deviation(), 0.1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    model: &'static str,
    shards: Vec<ShardRows>,
}

impl Distribution {
    /// A distribution of `model`'s rows over `shards`.
    pub fn new(model: &'static str, shards: Vec<ShardRows>) -> Self {
        Distribution { model, shards }
    }

    /// The model's name.
    pub fn model(&self) -> &'static str {
        self.model
    }

    /// Rows per shard, in the model's shard order.
    pub fn shards(&self) -> &[ShardRows] {
        &self.shards
    }

    /// The rows on `shard`, if it is one of the model's shards.
    pub fn rows(&self, shard: ShardId) -> Option<u64> {
        self.shards
            .iter()
            .find(|s| s.shard == shard)
            .map(|s| s.rows)
    }

    /// All rows.
    pub fn total(&self) -> u64 {
        self.shards.iter().map(|s| s.rows).sum()
    }

    /// Mean rows per shard (0 for no shards).
    pub fn mean(&self) -> f64 {
        if self.shards.is_empty() {
            return 0.0;
        }
        self.total() as f64 / self.shards.len() as f64
    }

    /// Standard deviation of the rows per shard (population: over exactly these shards).
    pub fn std_dev(&self) -> f64 {
        if self.shards.is_empty() {
            return 0.0;
        }
        let mean = self.mean();
        let variance = self
            .shards
            .iter()
            .map(|s| (s.rows as f64 - mean).powi(2))
            .sum::<f64>()
            / self.shards.len() as f64;
        variance.sqrt()
    }

    /// Standard deviation relative to the mean (0 when there are no rows): 0.05 means shards
    /// typically hold within 5% of the mean.
    pub fn coefficient_of_variation(&self) -> f64 {
        let mean = self.mean();
        if mean == 0.0 {
            0.0
        } else {
            self.std_dev() / mean
        }
    }

    /// The largest relative distance of a shard from the mean (0 when there are no rows): 0.2
    /// means the fullest or emptiest shard is 20% off the mean.
    pub fn max_deviation(&self) -> f64 {
        let mean = self.mean();
        if mean == 0.0 {
            return 0.0;
        }
        self.shards
            .iter()
            .map(|s| (s.rows as f64 - mean).abs() / mean)
            .fold(0.0, f64::max)
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} rows on {} shards, mean {:.1}, std dev {:.1} ({:.1}%)",
            self.model,
            self.total(),
            self.shards.len(),
            self.mean(),
            self.std_dev(),
            100.0 * self.coefficient_of_variation()
        )?;
        for s in &self.shards {
            writeln!(f, "  {:<16} {:>10}", s.shard.to_string(), s.rows)?;
        }
        Ok(())
    }
}

impl<DB: Backend> Cluster<DB> {
    /// Rows per shard of model `M`, with mean and standard deviation: one `COUNT(*)` on every
    /// shard the model uses, in parallel.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// let d = cluster.distribution::<User>().await?;
    /// println!("{d}");                       // a table of rows per shard
    /// assert!(d.coefficient_of_variation() < 0.05);
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::UnknownShard`](grant_core::Error::UnknownShard) when the cluster lacks one of
    /// the model's shards; a shard's error (naming it) when a count fails.
    ///
    /// # Cancel safety
    ///
    /// Read-only: dropping the future cancels the counts still running.
    pub async fn distribution<M: Model>(&self) -> Result<Distribution> {
        self.check::<M>()?;
        let shards: Vec<ShardId> = match self.placement::<M>() {
            Some(state) => state.placement.shards::<M>().into_owned(),
            None => M::shards().to_vec(),
        };
        let counts = try_join_all(shards.into_iter().map(|shard| async move {
            let rows = Query::<M>::on_shard(shard).count(self).await?;
            Ok::<_, grant_core::Error>(ShardRows { shard, rows })
        }))
        .await?;
        Ok(Distribution::new(M::META.name, counts))
    }
}

//! The budget every worker of a run draws from before each exchange, so that
//! the run stops at its time limit or its count, whichever comes first.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

/// The budget every worker draws from: a time limit, and optionally a count of exchanges.
#[derive(Debug)]
pub(crate) struct Budget {
    /// No exchange starts at or after this moment.
    pub end: Instant,
    /// Exchanges left to start, when the run is bounded by count.
    remaining: Option<AtomicU64>,
}

impl Budget {
    /// A budget that ends at `end` and, with a `count`, after that many exchanges.
    pub(crate) fn new(end: Instant, count: Option<u64>) -> Self {
        Budget {
            end,
            remaining: count.map(AtomicU64::new),
        }
    }

    /// Takes the right to start one more exchange, if time and count allow.
    pub(crate) fn take(&self) -> bool {
        if Instant::now() >= self.end {
            return false;
        }
        match &self.remaining {
            None => true,
            Some(remaining) => remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    /// Whether the count, if any, has been used up.
    pub(crate) fn count_reached(&self) -> bool {
        self.remaining
            .as_ref()
            .is_some_and(|remaining| remaining.load(Ordering::Relaxed) == 0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::task::JoinSet;

    use super::*;

    #[tokio::test]
    async fn a_count_hands_out_exactly_that_many_exchanges() {
        let budget = Arc::new(Budget::new(
            Instant::now() + Duration::from_secs(60),
            Some(1000),
        ));
        let mut tasks = JoinSet::new();
        for _ in 0..8 {
            let budget = Arc::clone(&budget);
            tasks.spawn(async move {
                let mut taken = 0u64;
                while budget.take() {
                    taken += 1;
                    tokio::task::yield_now().await;
                }
                taken
            });
        }
        let total: u64 = tasks.join_all().await.into_iter().sum();
        assert_eq!(total, 1000);
        assert!(budget.count_reached());
    }

    #[tokio::test]
    async fn a_budget_past_its_end_hands_out_nothing() {
        let budget = Budget::new(Instant::now(), Some(10));
        assert!(!budget.take());
        assert!(!budget.count_reached());
        let open = Budget::new(Instant::now() + Duration::from_secs(60), None);
        assert!(open.take() && open.take());
    }
}

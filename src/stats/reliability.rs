//! Cronbach's alpha of an element's criteria, accumulated one respondent at a time so that the
//! answers are streamed, never held whole. Pure code.

/// Running sums for one set of items (listwise: only respondents answering every item count).
#[derive(Debug, Clone, PartialEq)]
pub struct AlphaAccumulator {
    n: u64,
    item_sum: Vec<f64>,
    item_sum_sq: Vec<f64>,
    total_sum: f64,
    total_sum_sq: f64,
}

impl AlphaAccumulator {
    /// An accumulator for `items` items.
    pub fn new(items: usize) -> Self {
        Self { n: 0, item_sum: vec![0.0; items], item_sum_sq: vec![0.0; items], total_sum: 0.0, total_sum_sq: 0.0 }
    }

    /// Adds one respondent's item values; ignored unless every item has a value.
    pub fn add(&mut self, values: &[Option<f64>]) {
        if values.len() != self.item_sum.len() || values.iter().any(Option::is_none) {
            return;
        }
        let mut total = 0.0;
        for (i, value) in values.iter().flatten().enumerate() {
            self.item_sum[i] += value;
            self.item_sum_sq[i] += value * value;
            total += value;
        }
        self.n += 1;
        self.total_sum += total;
        self.total_sum_sq += total * total;
    }

    /// Respondents who answered every item.
    pub fn complete(&self) -> u64 {
        self.n
    }

    /// `k/(k−1) × (1 − Σ var(item) / var(total))`; `None` with fewer than two items or two complete
    /// respondents, or when the totals do not vary.
    pub fn alpha(&self) -> Option<f64> {
        let k = self.item_sum.len();
        if k < 2 || self.n < 2 {
            return None;
        }
        let n = self.n as f64;
        let variance = |sum: f64, sum_sq: f64| (sum_sq - sum * sum / n) / (n - 1.0);
        let items: f64 = self.item_sum.iter().zip(&self.item_sum_sq).map(|(s, q)| variance(*s, *q)).sum();
        let total = variance(self.total_sum, self.total_sum_sq);
        if total <= 0.0 {
            return None;
        }
        let k = k as f64;
        Some(k / (k - 1.0) * (1.0 - items / total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: numpy, `k/(k-1) * (1 - X.var(0, ddof=1).sum() / X.sum(1).var(ddof=1))`.
    #[test]
    fn alpha_matches_the_textbook_formula() {
        let rows =
            [[4.0, 5.0, 4.0], [3.0, 3.0, 2.0], [5.0, 5.0, 5.0], [2.0, 3.0, 3.0], [4.0, 4.0, 5.0], [1.0, 2.0, 1.0]];
        let mut acc = AlphaAccumulator::new(3);
        for row in rows {
            acc.add(&row.map(Some));
        }
        acc.add(&[Some(5.0), None, Some(1.0)]);
        assert_eq!(acc.complete(), 6, "an incomplete respondent is left out");
        assert!((acc.alpha().unwrap() - 0.9558541266794625).abs() < 1e-12);
    }

    #[test]
    fn alpha_needs_variation_and_two_items() {
        let mut constant = AlphaAccumulator::new(2);
        constant.add(&[Some(3.0), Some(3.0)]);
        constant.add(&[Some(3.0), Some(3.0)]);
        assert_eq!(constant.alpha(), None);
        let mut one = AlphaAccumulator::new(1);
        one.add(&[Some(1.0)]);
        one.add(&[Some(5.0)]);
        assert_eq!(one.alpha(), None);
        assert_eq!(AlphaAccumulator::new(3).alpha(), None);
    }
}

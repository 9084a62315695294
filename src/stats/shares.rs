//! Shares of each option of a choice question (expectations and assessments). Pure functions.

use super::interval::{Confidence, wilson};

/// One option's share.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    /// Option value.
    pub value: String,
    /// Respondents who chose it.
    pub count: u64,
    /// Percentage of those who answered the question.
    pub estimate: f64,
    /// Wilson interval, lower bound.
    pub ci_low: f64,
    /// Wilson interval, upper bound.
    pub ci_high: f64,
}

/// Shares of each option among `answered` respondents, highest first (ties keep the
/// definition's order). Empty when nobody answered.
pub fn option_shares(options: &[String], counts: &[u64], answered: u64, confidence: Confidence) -> Vec<Share> {
    if answered == 0 {
        return Vec::new();
    }
    let mut shares: Vec<Share> = options
        .iter()
        .zip(counts)
        .map(|(value, count)| {
            let estimate = 100.0 * *count as f64 / answered as f64;
            let (ci_low, ci_high) = wilson(estimate, answered as f64, confidence.z).unwrap_or((0.0, 100.0));
            Share { value: value.clone(), count: *count, estimate, ci_low, ci_high }
        })
        .collect();
    shares.sort_by_key(|s| std::cmp::Reverse(s.count));
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_sorted_with_intervals() {
        let options = ["very_much".to_owned(), "much".to_owned(), "little".to_owned()];
        let shares = option_shares(&options, &[15, 81, 167], 263, Confidence::default());
        assert_eq!(shares[0].value, "little");
        assert_eq!(shares[1].value, "much");
        assert!((shares[1].ci_low - 25.528851987827423).abs() < 1e-9);
        assert!((shares[1].ci_high - 36.62095769828).abs() < 1e-9);
        assert!(option_shares(&options, &[0, 0, 0], 0, Confidence::default()).is_empty());
    }
}

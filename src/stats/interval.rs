//! Confidence intervals and tests for percentages (0–100). Pure functions.

use statrs::distribution::{ContinuousCDF, Normal};

/// How an interval was formed, as stated in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalKind {
    /// Wilson score interval of a proportion (with Kish's effective sample size when weighted).
    Wilson,
    /// Estimate ± z × standard error, clipped to 0–100.
    Normal,
}

/// A confidence level strictly between 0 and 1, with its two-sided normal quantile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidence {
    /// The level (0.95 by default).
    pub level: f64,
    /// The standard normal quantile for a two-sided interval at that level.
    pub z: f64,
}

impl Confidence {
    /// The level, if it lies strictly between 0.5 and 1 (narrower levels are not intervals anyone
    /// reports).
    pub fn new(level: f64) -> Option<Self> {
        if !(level.is_finite() && (0.5..1.0).contains(&level)) {
            return None;
        }
        let z = standard_normal().inverse_cdf(1.0 - (1.0 - level) / 2.0);
        Some(Self { level, z })
    }
}

impl Default for Confidence {
    fn default() -> Self {
        Self { level: 0.95, z: 1.959_963_984_540_054 }
    }
}

fn standard_normal() -> Normal {
    // Mean 0, standard deviation 1 is always a valid normal distribution.
    Normal::standard()
}

/// Wilson score interval for `100 × successes / n` where `n` may be an effective (fractional)
/// sample size; `p` is given as a percentage. `None` when `n` is not positive.
pub fn wilson(p: f64, n: f64, z: f64) -> Option<(f64, f64)> {
    if n.is_nan() || n <= 0.0 {
        return None;
    }
    let p = (p / 100.0).clamp(0.0, 1.0);
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some((100.0 * (centre - half).max(0.0), 100.0 * (centre + half).min(1.0)))
}

/// `estimate ± z × sqrt(variance)`, clipped to 0–100.
pub fn normal(estimate: f64, variance: f64, z: f64) -> (f64, f64) {
    let half = z * variance.max(0.0).sqrt();
    ((estimate - half).max(0.0), (estimate + half).min(100.0))
}

/// Two-sided p-value of a standard normal statistic.
pub fn two_sided_p(statistic: f64) -> f64 {
    if statistic.is_nan() {
        return 1.0;
    }
    (2.0 * (1.0 - standard_normal().cdf(statistic.abs()))).clamp(0.0, 1.0)
}

/// A difference between two estimates with its interval and two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    /// First minus second, in percentage points.
    pub difference: f64,
    /// Lower bound.
    pub ci_low: f64,
    /// Upper bound.
    pub ci_high: f64,
    /// Two-sided p-value of "no difference".
    pub p_value: f64,
}

/// Difference of two estimates with variances `var_a`, `var_b` and covariance `covariance`
/// (normal approximation).
pub fn normal_difference(a: f64, var_a: f64, b: f64, var_b: f64, covariance: f64, z: f64) -> Difference {
    let difference = a - b;
    let se = (var_a + var_b - 2.0 * covariance).max(0.0).sqrt();
    let p_value = if se > 0.0 {
        two_sided_p(difference / se)
    } else if difference.abs() < 1e-12 {
        1.0
    } else {
        0.0
    };
    Difference { difference, ci_low: difference - z * se, ci_high: difference + z * se, p_value }
}

/// Difference of two independent proportions (percentages `a` of `n_a`, `b` of `n_b`, sample sizes
/// possibly effective): Newcombe's hybrid score interval (method 10 of Newcombe 1998, built from
/// the two Wilson intervals) and the two-sided p-value of the pooled two-proportion z-test.
pub fn proportion_difference(a: f64, n_a: f64, b: f64, n_b: f64, z: f64) -> Option<Difference> {
    let (low_a, high_a) = wilson(a, n_a, z)?;
    let (low_b, high_b) = wilson(b, n_b, z)?;
    let difference = a - b;
    let ci_low = difference - ((a - low_a).powi(2) + (high_b - b).powi(2)).sqrt();
    let ci_high = difference + ((high_a - a).powi(2) + (b - low_b).powi(2)).sqrt();
    let pooled = (a * n_a + b * n_b) / (n_a + n_b) / 100.0;
    let se = (pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b)).sqrt();
    let p_value = if se > 0.0 {
        two_sided_p(difference / 100.0 / se)
    } else if difference.abs() < 1e-12 {
        1.0
    } else {
        0.0
    };
    Some(Difference { difference, ci_low, ci_high, p_value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    /// Reference values from statsmodels 0.14 `proportion_confint(method="wilson")`, times 100.
    #[test]
    fn wilson_matches_an_independent_implementation() {
        let z = Confidence::default().z;
        let cases = [
            (81.0, 263.0, 25.528851987827423, 36.62095769828),
            (15.0, 148.0, 6.238639953073628, 16.048724172330804),
            (0.0, 20.0, 0.0, 16.11251580528194),
            (1.0, 29.0, 0.6113214292762668, 17.175521879320293),
            (29.0, 29.0, 88.30302015002593, 100.0),
            (7.0, 30.0, 11.792388144489497, 40.928326158122175),
            (500.0, 580.0, 83.16147656993412, 88.77586081072418),
        ];
        for (x, n, low, high) in cases {
            let (l, h) = wilson(100.0 * x / n, n, z).unwrap();
            close(l, low);
            close(h, high);
        }
        let ninety = Confidence::new(0.90).unwrap();
        close(ninety.z, 1.6448536269514722);
        let (l, h) = wilson(100.0 * 81.0 / 263.0, 263.0, ninety.z).unwrap();
        close(l, 26.33136171884814);
        close(h, 35.65663496084881);
        assert!(wilson(50.0, 0.0, z).is_none(), "no answers, no interval");
    }

    #[test]
    fn the_default_quantile_is_the_computed_one() {
        close(Confidence::new(0.95).unwrap().z, Confidence::default().z);
        assert!(Confidence::new(1.0).is_none());
        assert!(Confidence::new(0.2).is_none());
        assert!(Confidence::new(f64::NAN).is_none());
    }

    /// Reference: statsmodels `confint_proportions_2indep(56, 70, 48, 80, method="newcomb")` and
    /// `proportions_ztest([56, 48], [70, 80])`.
    #[test]
    fn newcombe_interval_and_pooled_z_test() {
        let d = proportion_difference(80.0, 70.0, 60.0, 80.0, Confidence::default().z).unwrap();
        close(d.difference, 20.0);
        close(d.ci_low, 5.243147240236498);
        close(d.ci_high, 33.38726540369061);
        assert!((d.p_value - 0.00804508136819656).abs() < 1e-12);
    }

    #[test]
    fn normal_difference_handles_zero_variance() {
        let same = normal_difference(80.0, 0.0, 80.0, 0.0, 0.0, 1.96);
        assert_eq!(same.p_value, 1.0);
        let apart = normal_difference(80.0, 0.0, 70.0, 0.0, 0.0, 1.96);
        assert_eq!(apart.p_value, 0.0);
        let d = normal_difference(80.0, 4.0, 70.0, 5.0, 0.0, 1.96);
        close(d.ci_high - d.ci_low, 2.0 * 1.96 * 3.0);
        close(d.p_value, two_sided_p(10.0 / 3.0));
    }
}

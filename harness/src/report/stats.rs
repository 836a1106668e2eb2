//! Statistics for checking that load is spread as it should be: Pearson's
//! chi-square test of observed counts against an even split, with critical
//! values computed for any number of degrees of freedom (a table would stop
//! somewhere, and a test over more instances than it covers would silently
//! use the wrong bound).

/// The significance the steps test an even spread at: an even split is
/// called uneven once in a thousand runs, so the check is not flaky, while
/// a balancer that favours one instance by a few percent over thousands of
/// requests still fails it.
pub const DEFAULT_SIGNIFICANCE: f64 = 0.001;

/// Relative precision of a computed critical value: far below the three
/// decimals tables print.
const PRECISION: f64 = 1e-12;
/// Iterations of the incomplete gamma's series and continued fraction; they
/// converge in far fewer for any argument a chi-square test produces.
const MAX_ITERATIONS: usize = 10_000;
/// Below this a term or denominator counts as zero (Lentz's algorithm).
const TINY: f64 = 1e-300;

/// Why a chi-square question has no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// Fewer than 2 categories (e.g. instances) to compare: there is no
    /// spread to test.
    #[error("a chi-square test needs at least 1 degree of freedom (2 or more categories), got 0")]
    NoDegreesOfFreedom,
    /// The significance asked for is not strictly between 0 and 1.
    #[error("a significance level must be strictly between 0 and 1, got {0}")]
    Significance(f64),
}

/// Pearson's chi-square statistic of `observed` counts against an even split.
pub fn chi_square_uniform(observed: &[f64]) -> f64 {
    let total: f64 = observed.iter().sum();
    if observed.is_empty() || total == 0.0 {
        return 0.0;
    }
    let expected = total / observed.len() as f64;
    observed.iter().map(|o| (o - expected).powi(2) / expected).sum()
}

/// The probability that a chi-square variable with `degrees_of_freedom`
/// exceeds `x`: the p-value of a statistic `x`.
pub fn chi_square_survival(degrees_of_freedom: usize, x: f64) -> Result<f64, StatsError> {
    if degrees_of_freedom == 0 {
        return Err(StatsError::NoDegreesOfFreedom);
    }
    Ok(upper_regularized_gamma(degrees_of_freedom as f64 / 2.0, x / 2.0))
}

/// The chi-square critical value for `degrees_of_freedom` at significance
/// `p`: the `x` an even split exceeds with probability `p`. Computed by
/// bisection on the exact survival function, so it holds for any number of
/// degrees of freedom.
pub fn chi_square_critical(degrees_of_freedom: usize, p: f64) -> Result<f64, StatsError> {
    if degrees_of_freedom == 0 {
        return Err(StatsError::NoDegreesOfFreedom);
    }
    if !(p > 0.0 && p < 1.0) {
        return Err(StatsError::Significance(p));
    }
    let k = degrees_of_freedom as f64;
    let survival = |x: f64| upper_regularized_gamma(k / 2.0, x / 2.0);
    // The survival function falls from 1 at 0 towards 0: find an x past the
    // critical value (the mean plus a few standard deviations, doubled
    // until far enough), then halve the bracket.
    let (mut low, mut high) = (0.0_f64, k + 10.0 * (2.0 * k).sqrt() + 10.0);
    while survival(high) > p {
        low = high;
        high *= 2.0;
    }
    while high - low > PRECISION * high {
        let mid = (low + high) / 2.0;
        if survival(mid) > p {
            low = mid;
        } else {
            high = mid;
        }
    }
    Ok((low + high) / 2.0)
}

/// The chi-square critical value at p = 0.001 ([`DEFAULT_SIGNIFICANCE`]).
pub fn chi_square_critical_p001(degrees_of_freedom: usize) -> Result<f64, StatsError> {
    chi_square_critical(degrees_of_freedom, DEFAULT_SIGNIFICANCE)
}

/// The outcome of testing counts against an even split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvenSplit {
    /// Pearson's statistic of the counts against an even split.
    pub chi_square: f64,
    /// The bound an even split stays under except with probability `significance`.
    pub critical: f64,
    /// The number of categories less one.
    pub degrees_of_freedom: usize,
    /// The chance of calling an even split uneven, e.g. 0.001.
    pub significance: f64,
}

impl EvenSplit {
    /// Tests `counts` (one per category, e.g. per instance) against an even
    /// split at significance `p`.
    pub fn test(counts: &[usize], p: f64) -> Result<Self, StatsError> {
        let degrees_of_freedom = counts.len().checked_sub(1).ok_or(StatsError::NoDegreesOfFreedom)?;
        let observed: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
        Ok(Self {
            chi_square: chi_square_uniform(&observed),
            critical: chi_square_critical(degrees_of_freedom, p)?,
            degrees_of_freedom,
            significance: p,
        })
    }

    /// True when the split is consistent with an even one.
    pub fn is_even(&self) -> bool {
        self.chi_square < self.critical
    }
}

impl std::fmt::Display for EvenSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "chi-square {:.2} with {} degrees of freedom (critical {:.3} at p = {})",
            self.chi_square, self.degrees_of_freedom, self.critical, self.significance
        )
    }
}

/// Q(a, x) = Γ(a, x) / Γ(a), the regularized upper incomplete gamma
/// function: by its series below `a + 1` (where that converges fast) and by
/// its continued fraction above (Numerical Recipes §6.2).
fn upper_regularized_gamma(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x < a + 1.0 {
        1.0 - lower_series(a, x)
    } else {
        upper_continued_fraction(a, x)
    }
}

/// `exp(a ln x - x - ln Γ(a))`, the factor both expansions share.
fn prefactor(a: f64, x: f64) -> f64 {
    (a * x.ln() - x - ln_gamma(a)).exp()
}

/// P(a, x) by its series, for `x < a + 1`.
fn lower_series(a: f64, x: f64) -> f64 {
    let mut term = 1.0 / a;
    let mut sum = term;
    let mut n = a;
    for _ in 0..MAX_ITERATIONS {
        n += 1.0;
        term *= x / n;
        sum += term;
        if term.abs() < sum.abs() * f64::EPSILON {
            break;
        }
    }
    sum * prefactor(a, x)
}

/// Q(a, x) by its continued fraction (modified Lentz), for `x >= a + 1`.
fn upper_continued_fraction(a: f64, x: f64) -> f64 {
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..MAX_ITERATIONS {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < f64::EPSILON {
            break;
        }
    }
    prefactor(a, x) * h
}

/// ln Γ(x) for x > 0 by the Lanczos approximation (g = 7, 9 coefficients),
/// accurate to about 15 significant digits.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, c) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published upper-tail critical values (NIST/SEMATECH e-Handbook,
    /// table 1.3.6.7.4): `(df, p, value)`.
    const TABLE: [(usize, f64, f64); 24] = [
        (1, 0.05, 3.841),
        (1, 0.01, 6.635),
        (1, 0.001, 10.828),
        (2, 0.05, 5.991),
        (2, 0.01, 9.210),
        (2, 0.001, 13.816),
        (5, 0.05, 11.070),
        (5, 0.01, 15.086),
        (5, 0.001, 20.515),
        (10, 0.05, 18.307),
        (10, 0.01, 23.209),
        (10, 0.001, 29.588),
        (20, 0.05, 31.410),
        (20, 0.01, 37.566),
        (20, 0.001, 45.315),
        (30, 0.05, 43.773),
        (30, 0.01, 50.892),
        (30, 0.001, 59.703),
        (50, 0.05, 67.505),
        (50, 0.01, 76.154),
        (50, 0.001, 86.661),
        (100, 0.05, 124.342),
        (100, 0.01, 135.807),
        (100, 0.001, 149.449),
    ];

    #[test]
    fn critical_values_match_published_tables_to_three_decimals() {
        for (df, p, published) in TABLE {
            let computed = chi_square_critical(df, p).unwrap();
            assert!(
                (computed - published).abs() < 0.0005 + 1e-9,
                "df {df}, p {p}: computed {computed:.4}, published {published}"
            );
        }
    }

    #[test]
    fn the_survival_function_inverts_the_critical_value() {
        for df in [1, 3, 7, 64, 500, 5_000] {
            let x = chi_square_critical(df, 0.001).unwrap();
            let p = chi_square_survival(df, x).unwrap();
            assert!((p - 0.001).abs() < 1e-9, "df {df}: Q({x}) = {p}");
        }
        // Known closed forms: with 2 degrees of freedom Q(x) = exp(-x/2).
        let q = chi_square_survival(2, 3.0).unwrap();
        assert!((q - (-1.5f64).exp()).abs() < 1e-12, "{q}");
    }

    #[test]
    fn questions_without_an_answer_are_errors_not_clamped() {
        assert_eq!(chi_square_critical(0, 0.001), Err(StatsError::NoDegreesOfFreedom));
        assert_eq!(chi_square_critical(3, 0.0), Err(StatsError::Significance(0.0)));
        assert_eq!(chi_square_critical(3, 1.0), Err(StatsError::Significance(1.0)));
        assert!(chi_square_critical(3, f64::NAN).is_err());
        assert_eq!(EvenSplit::test(&[], 0.001), Err(StatsError::NoDegreesOfFreedom));
        assert_eq!(EvenSplit::test(&[10], 0.001), Err(StatsError::NoDegreesOfFreedom));
        // Beyond the old table's 10 degrees of freedom the bound keeps growing.
        assert!(chi_square_critical_p001(11).unwrap() > chi_square_critical_p001(10).unwrap());
    }

    #[test]
    fn an_even_split_scores_zero_and_a_skewed_one_fails() {
        assert_eq!(chi_square_uniform(&[1000.0, 1000.0, 1000.0]), 0.0);
        assert!(
            !EvenSplit::test(&[1200, 900, 900], DEFAULT_SIGNIFICANCE)
                .unwrap()
                .is_even()
        );
        assert!(
            EvenSplit::test(&[1010, 985, 1005], DEFAULT_SIGNIFICANCE)
                .unwrap()
                .is_even()
        );
    }

    /// For any number of instances (2 to 300) and any share per instance:
    /// an exactly even split always passes, and one where a single instance
    /// gets twice its share always fails. (That split scores `share (n-1)/(n+1)`
    /// for n instances, at least 660 here, while the critical value stays below
    /// 2n + 11: clearly skewed, not a borderline case.)
    #[test]
    fn property_even_splits_pass_and_clearly_skewed_ones_fail_for_any_instance_count() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        for instances in 2..=300 {
            for _ in 0..4 {
                let share = rng.usize(2_000..10_000);
                let even = vec![share; instances];
                let verdict = EvenSplit::test(&even, DEFAULT_SIGNIFICANCE).unwrap();
                assert!(verdict.is_even(), "{instances} × {share}: {verdict}");

                let mut skewed = even;
                skewed[rng.usize(..instances)] += share;
                let verdict = EvenSplit::test(&skewed, DEFAULT_SIGNIFICANCE).unwrap();
                assert!(!verdict.is_even(), "{instances} × {share}, one doubled: {verdict}");
            }
        }
    }
}

//! Statistics for checking that load is spread as it should be.

/// Pearson's chi-square statistic of `observed` counts against an even split.
pub fn chi_square_uniform(observed: &[f64]) -> f64 {
    let total: f64 = observed.iter().sum();
    if observed.is_empty() || total == 0.0 {
        return 0.0;
    }
    let expected = total / observed.len() as f64;
    observed.iter().map(|o| (o - expected).powi(2) / expected).sum()
}

/// The chi-square critical value at p = 0.001 for 1 to 10 degrees of freedom:
/// an even split exceeds it once in a thousand runs.
pub fn chi_square_critical_p001(degrees_of_freedom: usize) -> f64 {
    const TABLE: [f64; 10] = [
        10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877, 29.588,
    ];
    TABLE[degrees_of_freedom.clamp(1, 10) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_even_split_scores_zero_and_a_skewed_one_fails() {
        assert_eq!(chi_square_uniform(&[1000.0, 1000.0, 1000.0]), 0.0);
        let skewed = chi_square_uniform(&[1200.0, 900.0, 900.0]);
        assert!(skewed > chi_square_critical_p001(2), "{skewed}");
        let fair = chi_square_uniform(&[1010.0, 985.0, 1005.0]);
        assert!(fair < chi_square_critical_p001(2), "{fair}");
    }
}

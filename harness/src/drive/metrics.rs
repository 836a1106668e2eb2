//! The gateway's Prometheus `/metrics` (on its admin listener), read by checks that a mechanism
//! (retries, ejections, connection reuse) did what it should.

/// One scrape of a gateway's `/metrics`.
#[derive(Debug, Clone)]
pub struct Scrape(pub String);

impl Scrape {
    /// Fetches `{admin}/metrics` from a gateway's admin listener (see
    /// `Stack::gateway_admin_urls`; the public port does not serve metrics).
    /// The error says what failed, including an answer that is not 200.
    pub async fn of(admin: &str) -> Result<Self, String> {
        let url = format!("{admin}/metrics");
        let response = reqwest::get(&url).await.map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("reading {url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {url}: {status}: {text}"));
        }
        Ok(Self(text))
    }

    /// The value of `series` (name and labels, exactly as rendered), if the
    /// gateway rendered it.
    pub fn get(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    /// The value of `series`; panics with the scrape when it is missing, so
    /// a renamed series fails a check instead of reading as zero.
    pub fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("{series} is not in the scrape:\n{}", self.0))
    }

    /// The sum of every series named `name` whose labels include `label`
    /// (as rendered, e.g. `service="user"`): a counter split by a further
    /// label (`detector`, `status`) read as one.
    pub fn sum(&self, name: &str, label: &str) -> f64 {
        self.0
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(name)?.strip_prefix('{')?;
                let (labels, value) = rest.split_once('}')?;
                labels
                    .split(',')
                    .any(|l| l == label)
                    .then(|| value.trim().parse::<f64>().ok())?
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_series_by_its_exact_labels() {
        let s = Scrape("# TYPE x counter\nx{service=\"auth\"} 2\nx{service=\"user\"} 7\nx_total 1\n".into());
        assert_eq!(s.get("x{service=\"user\"}"), Some(7.0));
        assert_eq!(s.get("x{service=\"gone\"}"), None);
        assert_eq!(s.value("x_total"), 1.0);
        let split = Scrape("y{service=\"user\",why=\"a\"} 2\ny{service=\"user\",why=\"b\"} 3\ny{service=\"auth\",why=\"a\"} 9\ny_other{service=\"user\"} 5\n".into());
        assert_eq!(split.sum("y", "service=\"user\""), 5.0);
    }
}

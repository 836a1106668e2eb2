//! The gateway's metrics on its admin listener: `Then the admin metric
//! "requests_total{service=\"greeter\"}" is at least 400`.

use cucumber::step::{Collection, Context};

use super::StackWorld;
use super::args::{Args, StepFuture, here, re, within};
use super::poll;
use crate::drive::metrics::Scrape;

pub(super) fn add<W: StackWorld>(steps: Collection<W>) -> Collection<W> {
    let pattern = format!(
        r#"^the admin metric "(?P<series>.+)" is (?:(?P<bound>at least|at most) )?(?P<value>-?[0-9]+(?:\.[0-9]+)?){}$"#,
        within!()
    );
    steps.then(here!(), re(&pattern), metric::<W>)
}

/// Whether `got` satisfies `bound` (`at least`, `at most`, or equal) `want`.
fn satisfies(got: f64, bound: Option<&str>, want: f64) -> bool {
    match bound {
        Some("at least") => got >= want,
        Some("at most") => got <= want,
        _ => got == want,
    }
}

fn metric<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let series = args.get("series").replace("\\\"", "\"");
        let bound = args.opt("bound").map(str::to_owned);
        let want: f64 = args.num("value");
        let admin = w
            .admin_url()
            .expect("this step reads the gateway's metrics: it needs StackWorld::admin_url (or a stack)");
        let what = format!("{series} to be {} {want}", bound.as_deref().unwrap_or(""));
        poll::check(&what, args.within(), || {
            let (admin, series, bound) = (admin.clone(), series.clone(), bound.clone());
            async move {
                let scrape = Scrape::of(&admin).await?;
                let got = scrape
                    .get(&series)
                    .ok_or_else(|| format!("{series} is not in {admin}/metrics"))?;
                if satisfies(got, bound.as_deref(), want) {
                    return Ok(());
                }
                Err(format!(
                    "{series} is {got}, expected {} {want}",
                    bound.as_deref().unwrap_or("")
                ))
            }
        })
        .await;
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn bounds() {
        assert!(super::satisfies(3.0, None, 3.0));
        assert!(!super::satisfies(4.0, None, 3.0));
        assert!(super::satisfies(4.0, Some("at least"), 3.0));
        assert!(!super::satisfies(2.0, Some("at least"), 3.0));
        assert!(super::satisfies(2.0, Some("at most"), 3.0));
    }
}

//! Redis as the services left it: `Then Redis has key "greeting:alice"`,
//! `Then Redis has no key matching "session:*" within 5 seconds`.

use cucumber::step::{Collection, Context};

use super::StackWorld;
use super::args::{Args, StepFuture, here, re, within};
use super::poll;

pub(super) fn add<W: StackWorld>(steps: Collection<W>) -> Collection<W> {
    let key = format!(r#"^Redis has (?:(?P<no>no) )?key "(?P<key>[^"]*)"{}$"#, within!());
    let matching = format!(
        r#"^Redis has (?P<no>no|a) key matching "(?P<pattern>[^"]*)"{}$"#,
        within!()
    );
    steps
        .then(here!(), re(&key), has_key::<W>)
        .then(here!(), re(&matching), has_matching::<W>)
}

fn client<W: StackWorld>(w: &mut W) -> redis::Client {
    let url = w
        .redis_url()
        .expect("this step reads Redis: it needs StackWorld::redis_url (or a stack)");
    redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("REDIS_URL does not parse: {e}"))
}

async fn connect(client: &redis::Client) -> Result<redis::aio::MultiplexedConnection, String> {
    client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("connecting to Redis: {e}"))
}

fn has_key<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let key = args.opt("key").unwrap_or_default().to_owned();
        let wanted = args.opt("no").is_none();
        let client = client(w);
        let what = format!("Redis to have {}key {key:?}", if wanted { "" } else { "no " });
        poll::check(&what, args.within(), || {
            let (client, key) = (client.clone(), key.clone());
            async move {
                let mut conn = connect(&client).await?;
                let n: i64 = redis::cmd("EXISTS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| format!("EXISTS {key}: {e}"))?;
                match (n > 0, wanted) {
                    (true, true) | (false, false) => Ok(()),
                    (false, true) => Err(format!("Redis has no key {key:?}")),
                    (true, false) => Err(format!("Redis has the key {key:?}")),
                }
            }
        })
        .await;
    })
}

fn has_matching<W: StackWorld>(w: &mut W, ctx: Context) -> StepFuture<'_> {
    Box::pin(async move {
        let args = Args::of(w, ctx);
        let pattern = args.opt("pattern").unwrap_or_default().to_owned();
        let wanted = args.get("no") == "a";
        let client = client(w);
        let what = format!(
            "Redis to have {} key matching {pattern:?}",
            if wanted { "a" } else { "no" }
        );
        poll::check(&what, args.within(), || {
            let (client, pattern) = (client.clone(), pattern.clone());
            async move {
                let mut conn = connect(&client).await?;
                // SCAN, not KEYS: it does not block a Redis the stack is using.
                let mut cursor = 0u64;
                let found = loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| format!("SCAN MATCH {pattern}: {e}"))?;
                    if let Some(key) = keys.into_iter().next() {
                        break Some(key);
                    }
                    if next == 0 {
                        break None;
                    }
                    cursor = next;
                };
                match (found, wanted) {
                    (Some(_), true) | (None, false) => Ok(()),
                    (None, true) => Err(format!("Redis has no key matching {pattern:?}")),
                    (Some(key), false) => Err(format!("Redis has {key:?}, which matches {pattern:?}")),
                }
            }
        })
        .await;
    })
}

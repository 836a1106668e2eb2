//! Reading what Redis itself counts, so tests can see how often the stack asks it.

/// How many times `command` (e.g. `hget`) has been called, from `INFO commandstats`.
pub async fn command_calls(redis_url: &str, command: &str) -> redis::RedisResult<u64> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut conn).await?;
    Ok(parse_calls(&info, command))
}

fn parse_calls(info: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{}:", command.to_ascii_lowercase());
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').find_map(|kv| kv.strip_prefix("calls=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_calls_of_one_command() {
        let info =
            "# Commandstats\r\ncmdstat_hget:calls=12,usec=40,usec_per_call=3.33\r\ncmdstat_get:calls=3,usec=1\r\n";
        assert_eq!(super::parse_calls(info, "hget"), 12);
        assert_eq!(super::parse_calls(info, "GET"), 3);
        assert_eq!(super::parse_calls(info, "set"), 0);
    }
}
